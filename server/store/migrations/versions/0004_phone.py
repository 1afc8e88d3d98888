"""Phone dial-in PINs: one per room, and personal ones that identify the caller.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "phone_room_pins",
        sa.Column("room", sa.String(200), primary_key=True),
        sa.Column("pin", sa.String(16), nullable=False, unique=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "phone_participant_pins",
        sa.Column("pin", sa.String(16), primary_key=True),
        sa.Column("room", sa.String(200), nullable=False),
        sa.Column("identity", sa.String(200), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("room", "identity", name="uq_phone_participant_pins_room_identity"),
    )


def downgrade() -> None:
    op.drop_table("phone_participant_pins")
    op.drop_table("phone_room_pins")
