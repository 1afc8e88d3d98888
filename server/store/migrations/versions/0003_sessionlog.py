"""Session log: sessions, attendance, media path, quality, timeline, notes, agenda, goals,
feedback, program settings and the transcript-read audit.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _id() -> sa.Column:
    return sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    )


def _session_id() -> sa.Column:
    return sa.Column(
        "session_id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        sa.ForeignKey("sessions.id", ondelete="CASCADE"),
        nullable=False,
    )


def _pair_id() -> sa.Column:
    return sa.Column(
        "pair_id", sa.String(36), sa.ForeignKey("pairs.id", ondelete="CASCADE"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "sessions",
        _id(),
        _pair_id(),
        sa.Column("room", sa.String(200), nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("ended_at", sa.Float, nullable=True),
        sa.Column("closed_at", sa.Float, nullable=True),
    )
    op.create_index("ix_sessions_pair_started", "sessions", ["pair_id", "started_at"])
    op.create_table(
        "session_attendance",
        _id(),
        _session_id(),
        sa.Column("identity", sa.String(200), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("joined_at", sa.Float, nullable=False),
        sa.Column("left_at", sa.Float, nullable=True),
        sa.Column("leave_reason", sa.String(40), nullable=True),
    )
    op.create_index("ix_session_attendance_session", "session_attendance", ["session_id"])
    op.create_table(
        "session_media_segments",
        _id(),
        _session_id(),
        sa.Column("identity", sa.String(200), nullable=False),
        sa.Column("mode", sa.String(20), nullable=False),
        sa.Column("previous", sa.String(20), nullable=True),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("ended_at", sa.Float, nullable=True),
    )
    op.create_index("ix_session_media_segments_session", "session_media_segments", ["session_id"])
    op.create_table(
        "session_quality_samples",
        _id(),
        _session_id(),
        sa.Column("identity", sa.String(200), nullable=False),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("inbound_kbps", sa.Float, nullable=False),
        sa.Column("outbound_kbps", sa.Float, nullable=False),
        sa.Column("loss_percent", sa.Float, nullable=False),
        sa.Column("rtt_ms", sa.Float, nullable=True),
    )
    op.create_index("ix_session_quality_samples_session", "session_quality_samples", ["session_id"])
    op.create_table(
        "session_timeline",
        _id(),
        _session_id(),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("identity", sa.String(200), nullable=True),
        sa.Column("detail", sa.String(200), nullable=False, server_default=""),
    )
    op.create_index("ix_session_timeline_session", "session_timeline", ["session_id", "id"])
    op.create_table(
        "session_notes",
        _id(),
        _session_id(),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "agenda_items",
        _id(),
        _pair_id(),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("added_by", sa.String(200), nullable=False),
        sa.Column("added_at", sa.Float, nullable=False),
        sa.Column("done_at", sa.Float, nullable=True),
        sa.Column("done_by", sa.String(200), nullable=True),
        sa.Column(
            "done_session_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=True
        ),
        sa.Column("carried_over", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("ix_agenda_items_pair", "agenda_items", ["pair_id"])
    op.create_table(
        "goals",
        _id(),
        _pair_id(),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("due_date", sa.String(10), nullable=True),
        sa.Column("progress", sa.Integer, nullable=False, server_default="0"),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_goals_pair", "goals", ["pair_id"])
    op.create_table(
        "session_feedback",
        _id(),
        _session_id(),
        _pair_id(),
        sa.Column("identity", sa.String(200), nullable=False),
        sa.Column("rating", sa.Integer, nullable=False),
        sa.Column("comment", sa.Text, nullable=True),
        sa.Column("good_fit", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("session_id", "identity", name="uq_session_feedback_session_identity"),
    )
    op.create_table(
        "sessionlog_settings",
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("value", sa.String(200), nullable=False),
    )
    op.create_table(
        "transcript_reads",
        _id(),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("pair_id", sa.String(36), nullable=True),
        sa.Column("session_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=True),
        sa.Column("purpose", sa.String(40), nullable=False),
        sa.Column("granted", sa.Boolean, nullable=False),
        sa.Column("messages", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "transcript_reads",
        "sessionlog_settings",
        "session_feedback",
        "goals",
        "agenda_items",
        "session_notes",
        "session_timeline",
        "session_quality_samples",
        "session_media_segments",
        "session_attendance",
        "sessions",
    ):
        op.drop_table(table)
