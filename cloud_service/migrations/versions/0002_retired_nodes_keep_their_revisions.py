"""retired nodes keep their revisions

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "retired_node",
        sa.Column("node_id", sa.String(length=63), nullable=False),
        sa.Column("schedules_revision", sa.Integer(), nullable=False),
        sa.Column("cameras_revision", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("node_id"),
    )


def downgrade() -> None:
    op.drop_table("retired_node")
