"""silent nodes go offline: the node's keepalive and the time it counts as gone

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("node", schema=None) as batch_op:
        batch_op.add_column(sa.Column("keepalive_s", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("silent_after", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_node_silent_after"), ["silent_after"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("node", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_node_silent_after"))
        batch_op.drop_column("silent_after")
        batch_op.drop_column("keepalive_s")
