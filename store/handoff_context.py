"""What the bot learnt before a hand-off, with the citizen's form slots encrypted at rest.

The hand-off context is JSON in the database. Its `slots` (description, location, name, phone
…) are personal data, so they are stored as one AES-GCM blob under `sealed_slots` and only
opened for the agent console, which masks them again until an agent reveals one (audited).
The blob is bound to its conversation (associated data), so it opens nowhere else.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.exceptions import InvalidTag

from store.crypto import PersonalDataCipher, UnreadableCiphertext, associated_data

SLOTS = "slots"
SEALED = "sealed_slots"


def _bound_to(conversation_id: int) -> bytes:
    return associated_data("handoff", SEALED, str(conversation_id))


def seal(
    context: dict[str, Any], cipher: PersonalDataCipher, conversation_id: int
) -> dict[str, Any]:
    """A copy of `context` whose `slots` entry is encrypted for the hand-off of conversation
    `conversation_id` (nothing to do without slots)."""
    slots = context.get(SLOTS)
    rest = {k: v for k, v in context.items() if k != SLOTS}
    if not slots:
        return rest
    blob = cipher.encrypt(
        json.dumps(slots, ensure_ascii=False, sort_keys=True), _bound_to(conversation_id)
    )
    return {**rest, SEALED: base64.b64encode(blob).decode("ascii")}


def unseal(
    context: dict[str, Any] | None, cipher: PersonalDataCipher, conversation_id: int
) -> dict[str, Any]:
    """A copy of `context` with `slots` decrypted again; a blob that does not open (key
    rotated, or sealed for another conversation) is dropped rather than shown as ciphertext.
    Blobs sealed before they were bound to a conversation still open."""
    context = dict(context or {})
    sealed = context.pop(SEALED, None)
    if isinstance(sealed, str):
        try:
            slots = json.loads(_open(cipher, base64.b64decode(sealed), conversation_id))
        except (ValueError, InvalidTag):  # wrong key, other conversation, damaged: show nothing
            slots = None
        if isinstance(slots, dict):
            context[SLOTS] = slots
    return context


def _open(cipher: PersonalDataCipher, blob: bytes, conversation_id: int) -> str:
    try:
        return cipher.decrypt(blob, _bound_to(conversation_id))
    except UnreadableCiphertext:
        return cipher.decrypt(blob)  # sealed before contexts were bound (no associated data)
