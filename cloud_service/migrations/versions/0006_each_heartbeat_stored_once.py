"""each heartbeat stored once, whichever cloud process gets it first

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("heartbeat_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ts", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_unique_constraint("uq_heartbeat_log_node_ts", ["node_id", "ts"])


def downgrade() -> None:
    with op.batch_alter_table("heartbeat_log", schema=None) as batch_op:
        batch_op.drop_constraint("uq_heartbeat_log_node_ts", type_="unique")
        batch_op.drop_column("ts")
