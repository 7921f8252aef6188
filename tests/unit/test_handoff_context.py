"""The hand-off context's form slots are sealed for one conversation and open nowhere else."""

from __future__ import annotations

import base64
import json

from store.crypto import PersonalDataCipher
from store.handoff_context import SEALED, seal, unseal
from tests.conftest import new_data_key

SLOTS = {"phone": "13812345678", "description": "幸福路路灯不亮"}


def test_slots_open_for_their_own_conversation_only() -> None:
    cipher = PersonalDataCipher(new_data_key())
    sealed = seal({"slots": SLOTS, "reason": "request_human"}, cipher, 7)
    assert "13812345678" not in json.dumps(sealed) and "slots" not in sealed
    assert unseal(sealed, cipher, 7) == {"slots": SLOTS, "reason": "request_human"}
    assert unseal(sealed, cipher, 8) == {"reason": "request_human"}  # moved: shows nothing


def test_slots_sealed_before_they_were_bound_still_open() -> None:
    cipher = PersonalDataCipher(new_data_key())
    legacy = cipher.encrypt(json.dumps(SLOTS, ensure_ascii=False))  # no associated data
    context = {SEALED: base64.b64encode(legacy).decode("ascii")}
    assert unseal(context, cipher, 7) == {"slots": SLOTS}
