"""Personal data at rest: AES-GCM encryption, keyed hashes for matching, masking for display."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from store.masking import mask_phone, mask_text

__all__ = ["DataKeyError", "PersonalDataCipher", "mask_phone", "mask_text", "normalize_mobile"]

MOBILE_RE = re.compile(r"^1[3-9]\d{9}$")


class DataKeyError(RuntimeError):
    """DATA_KEY is missing or not 32 bytes of base64."""


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

    def encrypt(self, plaintext: str) -> bytes:
        """Nonce + ciphertext; a fresh nonce each time."""
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plaintext.encode("utf-8"), None)

    def decrypt(self, blob: bytes) -> str:
        """Inverse of `encrypt`."""
        return self._aead.decrypt(blob[:12], blob[12:], None).decode("utf-8")

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
