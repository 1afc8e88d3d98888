"""Matching runs name the node that runs them and when it last said so (a lease): a
restarting node fails only its own runs, and a run whose node went quiet is failed.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("match_runs") as batch:
        batch.add_column(sa.Column("node", sa.String(200), nullable=True))
        batch.add_column(sa.Column("heartbeat_at", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("match_runs") as batch:
        batch.drop_column("heartbeat_at")
        batch.drop_column("node")
