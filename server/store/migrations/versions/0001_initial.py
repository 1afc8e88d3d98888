"""Initial schema: removals, chat messages, mentoring pairs.

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
        "removals",
        sa.Column("room", sa.String(200), primary_key=True),
        sa.Column("identity", sa.String(200), primary_key=True),
        sa.Column("removed_at", sa.Float, nullable=False),
    )
    op.create_table(
        "chat_messages",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("room", sa.String(200), nullable=False),
        sa.Column("identity", sa.String(200), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("client_id", sa.String(100), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("ts", sa.Float, nullable=False),
        sa.UniqueConstraint("room", "identity", "client_id", name="uq_chat_client_id"),
    )
    op.create_index("ix_chat_room_id", "chat_messages", ["room", "id"])
    op.create_table(
        "chat_reads",
        sa.Column("room", sa.String(200), primary_key=True),
        sa.Column("identity", sa.String(200), primary_key=True),
        sa.Column("message_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False),
    )
    op.create_table(
        "pairs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("room", sa.String(200), nullable=False, unique=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("flagged", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("flag_reason", sa.Text, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "pair_members",
        sa.Column(
            "pair_id",
            sa.String(36),
            sa.ForeignKey("pairs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("identity", sa.String(200), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
    )
    op.create_index("ix_pair_members_identity", "pair_members", ["identity"])


def downgrade() -> None:
    op.drop_table("pair_members")
    op.drop_table("pairs")
    op.drop_table("chat_reads")
    op.drop_index("ix_chat_room_id", "chat_messages")
    op.drop_table("chat_messages")
    op.drop_table("removals")
