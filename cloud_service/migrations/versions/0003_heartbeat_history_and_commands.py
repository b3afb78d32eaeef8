"""heartbeat history and commands

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "command",
        sa.Column("command_id", sa.String(length=63), nullable=False),
        sa.Column("node_id", sa.String(length=63), nullable=False),
        sa.Column("command", sa.JSON(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reply", sa.JSON(), nullable=True),
        sa.Column("replied_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("command_id"),
    )
    with op.batch_alter_table("command", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_command_node_id"), ["node_id"], unique=False)

    op.create_table(
        "heartbeat_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.String(length=63), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("heartbeat_log", schema=None) as batch_op:
        batch_op.create_index(
            "ix_heartbeat_log_node_received", ["node_id", "received_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("heartbeat_log", schema=None) as batch_op:
        batch_op.drop_index("ix_heartbeat_log_node_received")

    op.drop_table("heartbeat_log")
    with op.batch_alter_table("command", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_command_node_id"))

    op.drop_table("command")
