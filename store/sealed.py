"""Free text encrypted at rest, transparently: `message.text` reads and writes clear text, the
database column `text_enc` only ever holds AES-GCM ciphertext.

A model declares which attribute is sealed into which column and which attribute is its row
key::

    class Message(Base, SealedRow):
        __row_key__ = "public_id"
        text_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
        text = SealedText("text_enc", default="")

Writing `message.text` keeps the clear value on the instance and marks the column changed; the
session's `before_flush` hook encrypts it with the cipher the session was opened with
(`Database(url, cipher=...)`), under the associated data (table, column, row key). So a value
is never written in clear and a ciphertext copied into another row or column does not decrypt.
A session without a cipher refuses to flush a sealed value (`DataKeyError`) rather than write
it in clear. Reading decrypts on first access with the cipher of the session that loaded the
row, so detached rows (`expire_on_commit=False`) still read.

The row key must exist before the row is inserted, which rules out the autoincrement id: a
model uses an immutable unique column set in Python (`public_id`, a uuid, filled in here when
still empty, or the work order's `tracking_no`).

What this rules out: SQL cannot compare, search, sort or group by a sealed column (a class
attribute like `Message.text` is not a column, so such a query fails loudly instead of
silently comparing ciphertext). Only whether it is NULL is visible (`WorkOrder.delay_reason_enc
IS NOT NULL`). Search and aggregation over free text load the rows and work in Python.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import event
from sqlalchemy.orm import Session, object_session

from store.crypto import DataKeyError, PersonalDataCipher, associated_data

_CLEAR = "_sealed_clear"  # instance __dict__ keys (not mapped, so SQLAlchemy ignores them)
_PENDING = "_sealed_pending"
_CIPHER = "_sealed_cipher"


class SealedRow:
    """Mixin of models that have `SealedText` attributes."""

    __row_key__: ClassVar[str] = "public_id"

    def sealed_associated_data(self, column: str) -> bytes:
        """(table, column, row key) of a value of this row."""
        key = getattr(self, self.__row_key__)
        if not key:
            raise ValueError(f"{type(self).__name__}.{self.__row_key__} is not set")
        return associated_data(self.__tablename__, column, str(key))  # type: ignore[attr-defined]


class SealedText:
    """A clear-text attribute stored encrypted in the mapped column `column`."""

    def __init__(self, column: str, *, default: str | None = None) -> None:
        self.column = column
        self.default = default
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __eq__(self, other: object) -> bool:
        """`Message.text == "..."` in a query would silently be `WHERE false`: refuse it."""
        raise TypeError(f"{self.name} is encrypted: SQL cannot compare it (see store/sealed.py)")

    __ne__ = __eq__
    __hash__ = object.__hash__

    def __get__(self, obj: SealedRow | None, owner: type | None = None) -> Any:
        if obj is None:
            return self
        clear = obj.__dict__.setdefault(_CLEAR, {})
        if self.name not in clear:
            blob = getattr(obj, self.column)
            if blob is None:
                clear[self.name] = self.default
            else:
                cipher = _cipher_of(obj)
                clear[self.name] = cipher.decrypt(blob, obj.sealed_associated_data(self.column))
        return clear[self.name]

    def __set__(self, obj: SealedRow, value: str | None) -> None:
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{self.name} takes text, not {type(value).__name__}")
        obj.__dict__.setdefault(_CLEAR, {})[self.name] = value
        obj.__dict__.setdefault(_PENDING, set()).add(self.name)
        # The unit of work must see the row as changed; before_flush writes the ciphertext.
        setattr(obj, self.column, None)


def _cipher_of(obj: SealedRow) -> PersonalDataCipher:
    cipher = obj.__dict__.get(_CIPHER)
    if cipher is None:
        session = object_session(obj)
        cipher = session.info.get("cipher") if session is not None else None
    if cipher is None:
        raise DataKeyError(f"no DATA_KEY to read {type(obj).__name__}: open Database with a cipher")
    return cipher


def _sealed_attributes(cls: type) -> dict[str, SealedText]:
    return {
        name: attr
        for klass in cls.__mro__
        for name, attr in vars(klass).items()
        if isinstance(attr, SealedText)
    }


@event.listens_for(Session, "before_flush")
def _seal_before_flush(session: Session, _context: Any, _instances: Any) -> None:
    for obj in (*session.new, *session.dirty):
        pending = obj.__dict__.get(_PENDING)
        if not isinstance(obj, SealedRow) or not pending:
            continue
        cipher = session.info.get("cipher")
        if cipher is None:
            raise DataKeyError(
                f"no DATA_KEY to write {type(obj).__name__}: open Database with a cipher"
            )
        if obj.__row_key__ == "public_id" and not getattr(obj, "public_id", None):
            from store.models import new_public_id

            obj.public_id = new_public_id()  # type: ignore[attr-defined]
        obj.__dict__[_CIPHER] = cipher
        attributes = _sealed_attributes(type(obj))
        clear = obj.__dict__[_CLEAR]
        for name in list(pending):
            attr = attributes[name]
            value = clear[name]
            blob = (
                None
                if value is None
                else cipher.encrypt(value, obj.sealed_associated_data(attr.column))
            )
            setattr(obj, attr.column, blob)
        pending.clear()


def _remember_cipher(target: Any, context: Any, attrs: Any = None) -> None:
    """A row (or some of its columns) read from the database: decrypt again, later, with the
    cipher of the session that read it."""
    if not isinstance(target, SealedRow):
        return
    sealed_columns = {attr.column for attr in _sealed_attributes(type(target)).values()}
    if not target.__dict__.get(_PENDING) and (attrs is None or sealed_columns & set(attrs)):
        target.__dict__.pop(_CLEAR, None)
    session = getattr(context, "session", None)
    cipher = session.info.get("cipher") if session is not None else None
    if cipher is not None:
        target.__dict__[_CIPHER] = cipher


def _forget_clear(target: Any, *_: Any) -> None:
    """Expired attributes are read again from the database: drop what was decrypted."""
    if isinstance(target, SealedRow) and not target.__dict__.get(_PENDING):
        target.__dict__.pop(_CLEAR, None)


def listen(base: type) -> None:
    """Install the load/refresh/expire hooks on a declarative base (store/models.py does)."""
    event.listen(base, "load", _remember_cipher, propagate=True)
    event.listen(base, "refresh", _remember_cipher, propagate=True)
    event.listen(base, "expire", _forget_clear, propagate=True)
