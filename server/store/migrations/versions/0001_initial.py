"""Initial schema: revoked tokens and chat messages.

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
        "revoked_tokens",
        sa.Column("token_id", sa.String(64), primary_key=True),
        sa.Column("expires_at", sa.Float, nullable=False),
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


def downgrade() -> None:
    op.drop_index("ix_chat_room_id", "chat_messages")
    op.drop_table("chat_messages")
    op.drop_table("revoked_tokens")
