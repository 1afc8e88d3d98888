"""Matching: profiles, criteria, runs, their results, and rematch exclusions.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "match_profiles",
        sa.Column("identity", sa.String(200), primary_key=True),
        sa.Column("role", sa.String(10), nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "match_criteria",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "match_runs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("progress", sa.Float, nullable=False),
        sa.Column("mode", sa.String(20), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float, nullable=True),
        sa.Column("summary", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_table(
        "match_results",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column(
            "run_id",
            sa.String(36),
            sa.ForeignKey("match_runs.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("mentee", sa.String(200), nullable=False),
        sa.Column("mentor", sa.String(200), nullable=True),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("contributions", sa.Text, nullable=False),
        sa.Column("explanation", sa.Text, nullable=False),
        sa.Column("slots", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("fixed", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("pair_id", sa.String(36), nullable=True),
        sa.UniqueConstraint("run_id", "mentee", name="uq_match_results_run_mentee"),
    )
    op.create_table(
        "match_exclusions",
        sa.Column("mentee", sa.String(200), primary_key=True),
        sa.Column("mentor", sa.String(200), primary_key=True),
        sa.Column("pair_id", sa.String(36), nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("match_exclusions")
    op.drop_table("match_results")
    op.drop_table("match_runs")
    op.drop_table("match_criteria")
    op.drop_table("match_profiles")
