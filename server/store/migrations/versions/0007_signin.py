"""Sign-in: accounts (participants and operators), one-time sign-in links, sessions.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("email", sa.String(320), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("identity", sa.String(200), nullable=True, unique=True),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("deactivated_at", sa.Float, nullable=True),
    )
    for table in ("signin_links", "signin_sessions"):
        columns: list[sa.schema.SchemaItem] = [
            sa.Column("id", ID, primary_key=True, autoincrement=True),
            sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
            sa.Column(
                "account_id",
                ID,
                sa.ForeignKey("accounts.id", ondelete="CASCADE"),
                nullable=False,
            ),
            sa.Column("created_at", sa.Float, nullable=False),
        ]
        if table == "signin_links":
            columns += [
                sa.Column("expires_at", sa.Float, nullable=False),
                sa.Column("used_at", sa.Float, nullable=True),
            ]
        else:
            columns += [
                sa.Column("last_seen_at", sa.Float, nullable=False),
                sa.Column("expires_at", sa.Float, nullable=False),
                sa.Column("revoked_at", sa.Float, nullable=True),
                sa.Column("user_agent", sa.String(200), nullable=False),
                sa.Column("address", sa.String(64), nullable=False),
            ]
        op.create_table(table, *columns)
    op.create_index("ix_signin_links_account", "signin_links", ["account_id"])
    op.create_index("ix_signin_sessions_account", "signin_sessions", ["account_id"])


def downgrade() -> None:
    op.drop_index("ix_signin_sessions_account", "signin_sessions")
    op.drop_index("ix_signin_links_account", "signin_links")
    op.drop_table("signin_sessions")
    op.drop_table("signin_links")
    op.drop_table("accounts")
