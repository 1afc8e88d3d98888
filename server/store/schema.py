"""The tables, as SQLAlchemy Core metadata. Migrations in `migrations/` create them."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Identifiers of tokens an operator revoked, until they would have expired anyway.
revoked_tokens = Table(
    "revoked_tokens",
    metadata,
    Column("token_id", String(64), primary_key=True),
    Column("expires_at", Float, nullable=False),
)

chat_messages = Table(
    "chat_messages",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("room", String(200), nullable=False),
    Column("identity", String(200), nullable=False),
    Column("name", String(200), nullable=False),
    Column("client_id", String(100), nullable=False),
    Column("text", Text, nullable=False),
    Column("ts", Float, nullable=False),
    UniqueConstraint("room", "identity", "client_id", name="uq_chat_client_id"),
    Index("ix_chat_room_id", "room", "id"),
)

# How far each participant has read a room's chat (read receipts survive reconnects).
chat_reads = Table(
    "chat_reads",
    metadata,
    Column("room", String(200), primary_key=True),
    Column("identity", String(200), primary_key=True),
    Column("message_id", BigInteger().with_variant(Integer, "sqlite"), nullable=False),
)

# A mentoring pair (or small group): owns a room and a session log.
pairs = Table(
    "pairs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("room", String(200), nullable=False, unique=True),
    Column("title", String(200), nullable=False),
    Column("status", String(20), nullable=False),  # active | unpublished
    Column("source", String(20), nullable=False),  # operator | matching
    Column("flagged", Boolean, nullable=False, default=False),
    Column("flag_reason", Text, nullable=True),
    Column("created_at", Float, nullable=False),
)

pair_members = Table(
    "pair_members",
    metadata,
    Column("pair_id", String(36), ForeignKey("pairs.id", ondelete="CASCADE"), primary_key=True),
    Column("identity", String(200), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("role", String(20), nullable=False),
    Index("ix_pair_members_identity", "identity"),
)
