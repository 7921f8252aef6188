"""What the bot learnt before a hand-off, with the citizen's form slots encrypted at rest.

The hand-off context is JSON in the database. Its `slots` (description, location, name, phone
…) are personal data, so they are stored as one AES-GCM blob under `sealed_slots` and only
opened for the agent console, which masks them again until an agent reveals one (audited).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.exceptions import InvalidTag

from store.crypto import PersonalDataCipher

SLOTS = "slots"
SEALED = "sealed_slots"


def seal(context: dict[str, Any], cipher: PersonalDataCipher) -> dict[str, Any]:
    """A copy of `context` whose `slots` entry is encrypted (nothing to do without slots)."""
    slots = context.get(SLOTS)
    rest = {k: v for k, v in context.items() if k != SLOTS}
    if not slots:
        return rest
    blob = cipher.encrypt(json.dumps(slots, ensure_ascii=False, sort_keys=True))
    return {**rest, SEALED: base64.b64encode(blob).decode("ascii")}


def unseal(context: dict[str, Any] | None, cipher: PersonalDataCipher) -> dict[str, Any]:
    """A copy of `context` with `slots` decrypted again; a blob that no longer opens (key
    rotated) is dropped rather than shown as ciphertext."""
    context = dict(context or {})
    sealed = context.pop(SEALED, None)
    if isinstance(sealed, str):
        try:
            slots = json.loads(cipher.decrypt(base64.b64decode(sealed)))
        except (ValueError, InvalidTag):  # wrong key or damaged blob: show nothing
            slots = None
        if isinstance(slots, dict):
            context[SLOTS] = slots
    return context
