"""Data rights: the privacy audit log and participants' erasure requests.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "privacy_audit",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("subject", sa.String(200), nullable=True),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_table(
        "erasure_requests",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("identity", sa.String(200), nullable=False),
        sa.Column("requested_at", sa.Float, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("done_at", sa.Float, nullable=True),
    )
    op.create_index("ix_erasure_requests_identity", "erasure_requests", ["identity"])


def downgrade() -> None:
    op.drop_index("ix_erasure_requests_identity", "erasure_requests")
    op.drop_table("erasure_requests")
    op.drop_table("privacy_audit")
