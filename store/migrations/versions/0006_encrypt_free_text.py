"""encrypt free text at rest: message text, work-order description, location and delay reason,
work-order event notes and rating comments (AES-GCM, associated data = table, column, row key);
work orders' and citizens' names and phones, encrypted before without associated data, get it

Existing rows are encrypted here, so the migration needs DATA_KEY when those tables hold data
(`python -m store.migrate` passes the configured key; plain `alembic upgrade` reads DATA_KEY
from the environment). Rows get a `public_id` as their row key where they had none (messages,
events, ratings); work orders use their tracking number. Downgrade decrypts back into the
plain columns.

Revision ID: 0006
Revises: 0003
Create Date: 2026-11-26 07:30:00
"""

import base64
import os
import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from store.crypto import PersonalDataCipher, associated_data

revision: str = "0006"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table: (row key column, whether this migration adds it as `public_id`, (clear, sealed) pairs)
SEALED: dict[str, tuple[str, bool, list[tuple[str, str]]]] = {
    "message": ("public_id", True, [("text", "text_enc")]),
    "work_order": (
        "tracking_no",
        False,
        [
            ("description", "description_enc"),
            ("location", "location_enc"),
            ("delay_reason", "delay_reason_enc"),
        ],
    ),
    "work_order_event": ("public_id", True, [("note", "note_enc")]),
    "rating": ("public_id", True, [("comment", "comment_enc")]),
}
# Columns encrypted before, without associated data: encrypted again with it.
RESEALED: dict[str, tuple[str, list[str]]] = {
    "work_order": ("tracking_no", ["contact_name_enc", "phone_enc"]),
    "citizen": ("public_id", ["name_enc", "phone_enc"]),
}
# The plain columns as 0001 created them, for the downgrade.
PLAIN_NULLABLE = {"text": False, "description": False}


def _cipher(table: str) -> PersonalDataCipher:
    key = context.config.attributes.get("data_key") or os.environ.get("DATA_KEY")
    if not key:
        raise RuntimeError(
            f"table {table} holds personal data to encrypt: set DATA_KEY (the key the "
            "gateway and the action server use) and run the migration again"
        )
    return PersonalDataCipher(key)


def _holds_rows(table: str) -> bool:
    return op.get_bind().execute(sa.text(f"SELECT 1 FROM {table} LIMIT 1")).first() is not None


def _reseal(table: str, row_key: str, columns: list[str], *, with_aad: bool) -> None:
    """Decrypt `columns` and encrypt them again, with associated data or (downgrade) in the
    format before it (nonce + ciphertext, no associated data)."""
    bind = op.get_bind()
    rows = bind.execute(sa.text(f"SELECT id, {row_key}, {', '.join(columns)} FROM {table}")).all()
    updates = []
    for row in rows:
        if all(blob is None for blob in row[2:]):
            continue
        cipher = _cipher(table)
        values: dict[str, object] = {"id": row[0]}
        for column, blob in zip(columns, row[2:], strict=True):
            where = associated_data(table, column, row[1])
            if blob is None:
                values[column] = None
            elif with_aad:
                values[column] = cipher.encrypt(cipher.decrypt(blob), where)
            else:
                values[column] = _legacy(cipher.decrypt(blob, where))
        updates.append(values)
    if updates:
        sets = ", ".join(f"{column} = :{column}" for column in columns)
        bind.execute(sa.text(f"UPDATE {table} SET {sets} WHERE id = :id"), updates)


def _legacy(plaintext: str) -> bytes:
    key = context.config.attributes.get("data_key") or os.environ.get("DATA_KEY") or ""
    nonce = os.urandom(12)
    return nonce + AESGCM(base64.b64decode(key)).encrypt(nonce, plaintext.encode("utf-8"), None)


def upgrade() -> None:
    bind = op.get_bind()
    # Refuse before the first change: SQLite does not roll DDL back.
    for table in (*SEALED, *RESEALED):
        if _holds_rows(table):
            _cipher(table)
    for table, (row_key, columns) in RESEALED.items():
        _reseal(table, row_key, columns, with_aad=True)
    for table, (row_key, adds_key, pairs) in SEALED.items():
        with op.batch_alter_table(table) as batch:
            if adds_key:
                batch.add_column(sa.Column("public_id", sa.String(length=32), nullable=True))
            for _, sealed in pairs:
                batch.add_column(sa.Column(sealed, sa.LargeBinary(), nullable=True))
        clear_cols = ", ".join(clear for clear, _ in pairs)
        key_col = "NULL" if adds_key else row_key
        rows = bind.execute(sa.text(f"SELECT id, {key_col}, {clear_cols} FROM {table}")).all()
        cipher = _cipher(table) if rows else None
        updates = []
        for row in rows:
            key = uuid.uuid4().hex if adds_key else row[1]
            values: dict[str, object] = {"id": row[0], "row_key": key}
            for (_, sealed), value in zip(pairs, row[2:], strict=True):
                values[sealed] = (
                    None
                    if value is None or cipher is None
                    else cipher.encrypt(value, associated_data(table, sealed, key))
                )
            updates.append(values)
        if updates:
            sets = ", ".join(f"{sealed} = :{sealed}" for _, sealed in pairs)
            if adds_key:
                sets += ", public_id = :row_key"
            bind.execute(sa.text(f"UPDATE {table} SET {sets} WHERE id = :id"), updates)
        with op.batch_alter_table(table) as batch:
            for clear, _ in pairs:
                batch.drop_column(clear)
            if adds_key:
                batch.alter_column("public_id", existing_type=sa.String(length=32), nullable=False)
                batch.create_unique_constraint(op.f(f"uq_{table}_public_id"), ["public_id"])


def downgrade() -> None:
    bind = op.get_bind()
    for table in SEALED:
        if _holds_rows(table):
            _cipher(table)
    for table, (row_key, columns) in RESEALED.items():
        _reseal(table, row_key, columns, with_aad=False)
    for table, (row_key, adds_key, pairs) in SEALED.items():
        with op.batch_alter_table(table) as batch:
            for clear, _ in pairs:
                batch.add_column(sa.Column(clear, sa.Text(), nullable=True))
        sealed_cols = ", ".join(sealed for _, sealed in pairs)
        rows = bind.execute(sa.text(f"SELECT id, {row_key}, {sealed_cols} FROM {table}")).all()
        cipher = _cipher(table) if rows else None
        updates = []
        for row in rows:
            values: dict[str, object] = {"id": row[0]}
            for (clear, sealed), blob in zip(pairs, row[2:], strict=True):
                values[clear] = (
                    None
                    if blob is None or cipher is None
                    else cipher.decrypt(blob, associated_data(table, sealed, row[1]))
                )
            updates.append(values)
        if updates:
            sets = ", ".join(f"{clear} = :{clear}" for clear, _ in pairs)
            bind.execute(sa.text(f"UPDATE {table} SET {sets} WHERE id = :id"), updates)
        with op.batch_alter_table(table) as batch:
            for clear, _ in pairs:
                if clear in PLAIN_NULLABLE:
                    bind.execute(sa.text(f"UPDATE {table} SET {clear} = '' WHERE {clear} IS NULL"))
                    batch.alter_column(clear, existing_type=sa.Text(), nullable=False)
            for _, sealed in pairs:
                batch.drop_column(sealed)
            if adds_key:
                batch.drop_constraint(op.f(f"uq_{table}_public_id"), type_="unique")
                batch.drop_column("public_id")
