"""A citizen waiting for a human who types 留言 / 登记工单 (instead of pressing the button) is
given back to the bot, which gets the leave-message payload and starts the work-order form."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from store.db import Database
from store.models import Handoff


async def _say(gateway, sender: str, text: str) -> list[dict]:
    resp = await gateway.post("/webhooks/rest/webhook", json={"sender": sender, "message": text})
    assert resp.status == 200
    return await resp.json()


async def _states(db: Database) -> list[str]:
    async with db.session() as s:
        return list((await s.execute(select(Handoff.state))).scalars())


@pytest.mark.parametrize("typed", ["留言", "登记工单。", " 我要留言 "])
async def test_typed_leave_message_while_waiting_goes_back_to_the_bot(
    gateway, fake_rasa, db: Database, typed: str
) -> None:
    fake_rasa.status = 500  # the bot fails: a hand-off opens, nobody has taken it
    await _say(gateway, "citizen-typed", "我的社保转移一直办不下来")
    assert await _states(db) == ["pending"]

    fake_rasa.status = 200
    calls = len(fake_rasa.received)
    await _say(gateway, "citizen-typed", typed)
    assert len(fake_rasa.received) == calls + 1
    assert fake_rasa.received[-1]["message"] == "/leave_message"
    assert await _states(db) == ["returned_to_bot"]


async def test_other_words_while_waiting_stay_with_the_queue(gateway, fake_rasa, db) -> None:
    fake_rasa.status = 500
    await _say(gateway, "citizen-waits", "我的社保转移一直办不下来")
    fake_rasa.status = 200
    calls = len(fake_rasa.received)
    assert await _say(gateway, "citizen-waits", "留言板在哪里看回复") == []
    assert len(fake_rasa.received) == calls
    assert await _states(db) == ["pending"]
