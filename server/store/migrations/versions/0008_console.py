"""The console: deactivated participants' profiles, out of the matching pool.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_inactive_profiles",
        sa.Column("identity", sa.String(200), primary_key=True),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("deactivated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("console_inactive_profiles")
