"""Web push: browsers' push subscriptions and each person's notification channels.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "push_subscriptions",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("identity", sa.String(200), nullable=False),
        sa.Column("endpoint", sa.String(2000), nullable=False),
        sa.Column("p256dh", sa.String(200), nullable=False),
        sa.Column("auth", sa.String(100), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("endpoint", name="uq_push_subscriptions_endpoint"),
    )
    op.create_index("ix_push_subscriptions_identity", "push_subscriptions", ["identity"])
    op.create_table(
        "notification_channels",
        sa.Column("identity", sa.String(200), primary_key=True),
        sa.Column("topic", sa.String(20), primary_key=True),
        sa.Column("email", sa.Boolean, nullable=False),
        sa.Column("push", sa.Boolean, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("notification_channels")
    op.drop_index("ix_push_subscriptions_identity", "push_subscriptions")
    op.drop_table("push_subscriptions")
