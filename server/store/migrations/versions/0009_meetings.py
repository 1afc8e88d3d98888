"""Durable jobs, meetings, calendar feeds and the unread-chat digest.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("key", sa.String(200), nullable=True),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("run_at", sa.Float, nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        sa.Column("lease_until", sa.Float, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float, nullable=True),
        sa.UniqueConstraint("key", name="uq_jobs_key"),
    )
    op.create_index("ix_jobs_status_run_at", "jobs", ["status", "run_at"])
    op.create_table(
        "meetings",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "pair_id", sa.String(36), sa.ForeignKey("pairs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("proposed_by", sa.String(200), nullable=False),
        sa.Column("options", sa.Text, nullable=False),
        sa.Column("start_utc", sa.Float, nullable=True),
        sa.Column("minutes", sa.Integer, nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("every_weeks", sa.Integer, nullable=True),
        sa.Column("until", sa.String(10), nullable=True),
        sa.Column("sequence", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_meetings_pair_id", "meetings", ["pair_id"])
    op.create_table(
        "calendar_feeds",
        sa.Column("identity", sa.String(200), primary_key=True),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("secret_hash", name="uq_calendar_feeds_secret_hash"),
    )
    op.create_table(
        "chat_digest_marks",
        sa.Column("room", sa.String(200), primary_key=True),
        sa.Column("identity", sa.String(200), primary_key=True),
        sa.Column("message_id", ID, nullable=False),
    )
    op.create_table(
        "chat_digest_people",
        sa.Column("identity", sa.String(200), primary_key=True),
        sa.Column("last_sent_at", sa.Float, nullable=True),
        sa.Column("unsubscribed", sa.Boolean, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("chat_digest_people")
    op.drop_table("chat_digest_marks")
    op.drop_table("calendar_feeds")
    op.drop_index("ix_meetings_pair_id", "meetings")
    op.drop_table("meetings")
    op.drop_index("ix_jobs_status_run_at", "jobs")
    op.drop_table("jobs")
