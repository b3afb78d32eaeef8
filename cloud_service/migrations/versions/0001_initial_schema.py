"""initial schema

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event",
        sa.Column("event_id", sa.String(length=63), nullable=False),
        sa.Column("node_id", sa.String(length=63), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("envelope", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
        sa.UniqueConstraint("node_id", "seq", name="uq_event_node_seq"),
    )
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.create_index("ix_event_node_received", ["node_id", "received_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_event_received_at"), ["received_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_event_type"), ["type"], unique=False)

    op.create_table(
        "node",
        sa.Column("node_id", sa.String(length=63), nullable=False),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("session", sa.Integer(), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_heartbeat", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat", sa.JSON(), nullable=True),
        sa.Column("schedules_revision_desired", sa.Integer(), nullable=False),
        sa.Column("schedules_revision_applied", sa.Integer(), nullable=False),
        sa.Column("cameras_revision_desired", sa.Integer(), nullable=False),
        sa.Column("cameras_revision_applied", sa.Integer(), nullable=False),
        sa.Column("acked_seq", sa.Integer(), nullable=False),
        sa.Column("max_seq", sa.Integer(), nullable=False),
        sa.Column("seq_gaps", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("node_id"),
    )
    op.create_table(
        "recording",
        sa.Column("recording_id", sa.String(length=63), nullable=False),
        sa.Column("node_id", sa.String(length=63), nullable=False),
        sa.Column("camera_id", sa.String(length=63), nullable=False),
        sa.Column("trigger", sa.String(), nullable=False),
        sa.Column("schedule_id", sa.String(), nullable=True),
        sa.Column("command_id", sa.String(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("recording_id"),
    )
    with op.batch_alter_table("recording", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_recording_camera_id"), ["camera_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_recording_node_id"), ["node_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_recording_started_at"), ["started_at"], unique=False)

    op.create_table(
        "schedule",
        sa.Column("schedule_id", sa.String(length=63), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("schedule_id"),
    )
    op.create_table(
        "segment",
        sa.Column("segment_id", sa.String(length=63), nullable=False),
        sa.Column("recording_id", sa.String(length=63), nullable=False),
        sa.Column("node_id", sa.String(length=63), nullable=False),
        sa.Column("camera_id", sa.String(length=63), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("bytes", sa.Integer(), nullable=False),
        sa.Column("crc32c", sa.String(), nullable=False),
        sa.Column("codec", sa.String(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("lost_packets", sa.Integer(), nullable=False),
        sa.Column("uri", sa.String(), nullable=True),
        sa.Column("upload_state", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("segment_id"),
    )
    with op.batch_alter_table("segment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_segment_camera_id"), ["camera_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_segment_recording_id"), ["recording_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_segment_start"), ["start"], unique=False)

    op.create_table(
        "camera",
        sa.Column("camera_id", sa.String(length=63), nullable=False),
        sa.Column("node_id", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("url", sa.String(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("transport", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["node_id"],
            ["node.node_id"],
        ),
        sa.PrimaryKeyConstraint("camera_id"),
    )
    with op.batch_alter_table("camera", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_camera_node_id"), ["node_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("camera", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_camera_node_id"))

    op.drop_table("camera")
    with op.batch_alter_table("segment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_segment_start"))
        batch_op.drop_index(batch_op.f("ix_segment_recording_id"))
        batch_op.drop_index(batch_op.f("ix_segment_camera_id"))

    op.drop_table("segment")
    op.drop_table("schedule")
    with op.batch_alter_table("recording", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recording_started_at"))
        batch_op.drop_index(batch_op.f("ix_recording_node_id"))
        batch_op.drop_index(batch_op.f("ix_recording_camera_id"))

    op.drop_table("recording")
    op.drop_table("node")
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_event_type"))
        batch_op.drop_index(batch_op.f("ix_event_received_at"))
        batch_op.drop_index("ix_event_node_received")

    op.drop_table("event")
