"""phone verification: SMS one-time codes, verified phone on the citizen

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 07:40:00

Until now a citizen's phone_enc/phone_hash was copied from the first work-order form and used to
merge citizens, although nobody had proved the number. From here on those columns hold only a
phone verified by an SMS code (phone_verified_at), so the unproved values are cleared. Merges
already made from them are not undone here: a supervisor can unlink an identity in the console.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import store.models

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "phone_verification",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel_identity_id", sa.Integer(), nullable=False),
        sa.Column("phone_enc", sa.LargeBinary(), nullable=False),
        sa.Column("phone_hash", sa.String(length=64), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("expires_at", store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("verified_at", store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", store.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_identity_id"],
            ["channel_identity.id"],
            name=op.f("fk_phone_verification_channel_identity_id_channel_identity"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_phone_verification")),
    )
    with op.batch_alter_table("phone_verification", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_phone_verification_channel_identity_id"),
            ["channel_identity_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_phone_verification_phone_hash"), ["phone_hash"], unique=False
        )
    with op.batch_alter_table("citizen", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("phone_verified_at", store.models.UTCDateTime(timezone=True), nullable=True)
        )
    op.execute("UPDATE citizen SET phone_enc = NULL, phone_hash = NULL")


def downgrade() -> None:
    with op.batch_alter_table("citizen", schema=None) as batch_op:
        batch_op.drop_column("phone_verified_at")
    with op.batch_alter_table("phone_verification", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_phone_verification_phone_hash"))
        batch_op.drop_index(batch_op.f("ix_phone_verification_channel_identity_id"))
    op.drop_table("phone_verification")
