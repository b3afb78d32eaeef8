"""seq counted per outbox: a node with a new data dir numbers from 1 again

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("node", schema=None) as batch_op:
        batch_op.add_column(sa.Column("outbox_id", sa.String(length=63), nullable=False,
                                      server_default=""))
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("outbox_id", sa.String(length=63), nullable=False,
                                      server_default=""))
        batch_op.drop_constraint("uq_event_node_seq", type_="unique")
        batch_op.create_unique_constraint("uq_event_node_outbox_seq",
                                          ["node_id", "outbox_id", "seq"])


def downgrade() -> None:
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.drop_constraint("uq_event_node_outbox_seq", type_="unique")
        batch_op.create_unique_constraint("uq_event_node_seq", ["node_id", "seq"])
        batch_op.drop_column("outbox_id")
    with op.batch_alter_table("node", schema=None) as batch_op:
        batch_op.drop_column("outbox_id")
