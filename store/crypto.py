"""Personal data at rest: AES-GCM encryption, keyed hashes for matching, masking for display."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from store.masking import mask_phone, mask_text

__all__ = [
    "DataKeyError",
    "PersonalDataCipher",
    "UnreadableCiphertext",
    "associated_data",
    "mask_phone",
    "mask_text",
    "normalize_mobile",
]

MOBILE_RE = re.compile(r"^1[3-9]\d{9}$")


VERSION = b"\x01"  # first byte of every ciphertext written with associated data
NONCE_BYTES = 12


class DataKeyError(RuntimeError):
    """DATA_KEY is missing or not 32 bytes of base64."""


class UnreadableCiphertext(ValueError):
    """A ciphertext does not decrypt: another key, or copied from another row or column."""


def associated_data(table: str, column: str, row_key: str) -> bytes:
    """The associated data of a value stored in `table`.`column` of the row `row_key`."""
    return "\x1f".join((table, column, row_key)).encode("utf-8")


class PersonalDataCipher:
    """Encrypts phone numbers and names with a key that only lives in the environment."""

    def __init__(self, key_b64: str) -> None:
        try:
            key = base64.b64decode(key_b64, validate=True)
        except Exception as exc:
            raise DataKeyError("DATA_KEY must be base64") from exc
        if len(key) != 32:
            raise DataKeyError("DATA_KEY must decode to 32 bytes (e.g. `openssl rand -base64 32`)")
        self._aead = AESGCM(key)
        self._hash_key = hashlib.sha256(b"hotline12345-hash|" + key).digest()

    def encrypt(self, plaintext: str, associated_data: bytes = b"") -> bytes:
        """`VERSION` + nonce + ciphertext, a fresh nonce each time. `associated_data` (see
        `associated_data()`) binds the ciphertext to where it is stored: it decrypts only with
        the same bytes, so a ciphertext copied into another row or column fails."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), associated_data)
        return VERSION + nonce + sealed

    def decrypt(self, blob: bytes, associated_data: bytes = b"") -> str:
        """Inverse of `encrypt` with the same associated data; raises `UnreadableCiphertext`.

        Ciphertexts written before the version byte existed (nonce + ciphertext, no associated
        data) still decrypt: a legacy blob may start with the version byte by chance, so a
        failed versioned decryption is retried the legacy way. That retry cannot accept a
        versioned blob under the wrong associated data: read as legacy, its tag fails too.
        """
        blob = bytes(blob)
        if blob[:1] == VERSION and len(blob) > 1 + NONCE_BYTES:
            try:
                body = blob[1:]
                plain = self._aead.decrypt(body[:NONCE_BYTES], body[NONCE_BYTES:], associated_data)
                return plain.decode("utf-8")
            except InvalidTag:
                pass
        try:
            return self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], None).decode("utf-8")
        except (InvalidTag, ValueError) as exc:
            raise UnreadableCiphertext("wrong key, or stored in another row or column") from exc

    def keyed_hash(self, value: str) -> str:
        """A stable HMAC of `value` to find equal phones without storing them in clear."""
        return hmac.new(self._hash_key, value.encode("utf-8"), hashlib.sha256).hexdigest()


def normalize_mobile(raw: str) -> str | None:
    """A mainland mobile number in 11 digits, or None. Accepts spaces, dashes, +86."""
    digits = re.sub(r"[\s\-()（）]", "", raw or "")
    digits = digits.translate(str.maketrans("０１２３４５６７８９", "0123456789"))
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("0086"):
        digits = digits[4:]
    elif digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    return digits if MOBILE_RE.match(digits) else None
