"""The three real processes (Rasa, the action server, the gateway), as `make run` starts them.

WeChat's retries (each turn posted three times at once, as WeChat does when an answer is
slow) and Telegram's re-deliveries (each update posted twice) make one stored message per
turn, one answer and one work order. Rasa killed in the middle of the
form: the citizen hears back within 5 s, what they wrote is stored and an agent gets the chat.

wechatpy signs the requests and reads the replies (an independent peer). The account runs in
plaintext mode with passive replies only, so the reply budget (and Rasa's timeout) is raised for
a loaded machine.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from xml.sax.saxutils import escape

import pytest
from sqlalchemy import create_engine, text
from wechatpy import parse_message
from wechatpy.utils import WeChatSigner

from bot.channels.telegram import SECRET_HEADER
from store.crypto import PersonalDataCipher, associated_data
from store.db import sync_url
from store.tracking import find_in_text
from tests.e2e.conftest import Stack, start_stack, stop
from tests.e2e.test_rest_end_to_end import ANSWERS, say, text_of
from tests.fakes.telegram_api import TOKEN, FakeTelegramAPI, text_update

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]
WECHAT_TOKEN = "reliability-wechat-token"
GH_ID = "gh_reliability12345"
RETRIES = 3
TELEGRAM_SECRET = "reliability_telegram-secret"


class ThreadedTelegram:
    """The fake Bot API on an event loop of its own, in a thread (these tests are not async)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.fake = FakeTelegramAPI()
        asyncio.run_coroutine_threadsafe(self.fake.start(), self.loop).result(10)

    def sent_to(self, chat: int) -> list[str]:
        return [
            p["text"] for p in self.fake.called("sendMessage") if str(p["chat_id"]) == str(chat)
        ]

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.fake.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def telegram() -> Iterator[ThreadedTelegram]:
    fake = ThreadedTelegram()
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def running(
    tmp_path_factory: pytest.TempPathFactory, telegram: ThreadedTelegram
) -> Iterator[tuple[Stack, list]]:
    tmp = tmp_path_factory.mktemp("reliability-stack")
    extra = {
        "WECHAT_TOKEN": WECHAT_TOKEN,
        "WECHAT_REPLY_BUDGET": "25",
        "RASA_TIMEOUT": "20",  # a loaded CI machine; a dead Rasa is still noticed at once
        "TELEGRAM_TOKEN": TOKEN,
        "TELEGRAM_SECRET_TOKEN": TELEGRAM_SECRET,
        "TELEGRAM_API_BASE": telegram.fake.base_url,
    }
    stack, procs = start_stack(tmp, f"sqlite:///{tmp / 'hotline.db'}", extra)
    yield stack, procs
    stop(procs)


def wechat_post(stack: Stack, xml: str) -> str:
    """One signed POST as WeChat sends it; the body of the answer."""
    timestamp, nonce = str(int(time.time())), secrets.token_hex(5)
    signer = WeChatSigner()
    signer.add_data(WECHAT_TOKEN, timestamp, nonce)
    query = f"signature={signer.signature}&timestamp={timestamp}&nonce={nonce}"
    req = urllib.request.Request(
        f"{stack.gateway}/webhooks/wechat?{query}", data=xml.encode(), method="POST"
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        return resp.read().decode()


def wechat_turn(stack: Stack, openid: str, content: str) -> str:
    """One citizen message posted RETRIES times at once (same MsgId); the passive answer."""
    fields = {
        "ToUserName": GH_ID,
        "FromUserName": openid,
        "CreateTime": str(int(time.time())),
        "MsgType": "text",
        "Content": content,
        "MsgId": str(secrets.randbelow(2**63)),
    }
    xml = "<xml>" + "".join(f"<{k}>{escape(v)}</{k}>" for k, v in fields.items()) + "</xml>"
    with ThreadPoolExecutor(RETRIES) as pool:
        bodies = list(pool.map(lambda _: wechat_post(stack, xml), range(RETRIES)))
    answers = [parse_message(b).content for b in bodies if b != "success"]
    assert len(answers) == 1, bodies  # one passive answer; the other requests say `success`
    return answers[0]


def scalar(stack: Stack, sql: str, **params: object) -> object:
    engine = create_engine(sync_url(stack.database_url))
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql), params).scalar_one()
    finally:
        engine.dispose()


def citizen_texts(stack: Stack, sender: str) -> list[str]:
    """What `sender` said, decrypted with the stack's DATA_KEY (text is sealed at rest)."""
    cipher = PersonalDataCipher(stack.env["DATA_KEY"])
    engine = create_engine(sync_url(stack.database_url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    """SELECT message.public_id, message.text_enc FROM message JOIN conversation
                       ON message.conversation_id = conversation.id JOIN channel_identity
                       ON conversation.channel_identity_id = channel_identity.id
                       WHERE channel_identity.external_id = :sender
                       AND message.sender = 'citizen' ORDER BY message.id"""
                ),
                {"sender": sender},
            ).all()
    finally:
        engine.dispose()
    return [
        cipher.decrypt(blob, associated_data("message", "text_enc", public_id))
        for public_id, blob in rows
    ]


def test_wechat_retries_make_one_message_per_turn_and_one_order(running) -> None:
    stack, _ = running
    openid = "o" + uuid.uuid4().hex[:27]
    answer = wechat_turn(stack, openid, "我要反映问题，小区门口路灯坏了一个多月了晚上特别黑")
    turns = 1
    number = None
    for _ in range(12):
        number = find_in_text(answer)
        if number:
            break
        reply = next((a for keys, a in ANSWERS if any(k in answer for k in keys)), None)
        assert reply is not None, f"the form asked something a citizen cannot answer: {answer!r}"
        answer = wechat_turn(stack, openid, reply)
        turns += 1
    assert number, "no tracking number after 12 turns"

    conversation = """
        FROM message JOIN conversation ON message.conversation_id = conversation.id
        JOIN channel_identity ON conversation.channel_identity_id = channel_identity.id
        WHERE channel_identity.external_id = :openid"""
    citizen = scalar(
        stack, f"SELECT count(*) {conversation} AND message.sender = 'citizen'", openid=openid
    )
    assert citizen == turns
    orders = scalar(
        stack,
        """SELECT count(*) FROM work_order JOIN channel_identity
           ON work_order.channel_identity_id = channel_identity.id
           WHERE channel_identity.external_id = :openid""",
        openid=openid,
    )
    assert orders == 1


def wait(condition, within: float, what: str) -> None:
    """Poll `condition()` until true; fail naming `what` after `within` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {within:.0f} s")
        time.sleep(0.1)


def test_telegram_redeliveries_make_one_message_per_update_and_one_order(
    running, telegram: ThreadedTelegram
) -> None:
    stack, _ = running
    chat = 900_000 + secrets.randbelow(99_999)
    update_ids = itertools.count(secrets.randbelow(10**6) * 100)
    conversation = """
        FROM message JOIN conversation ON message.conversation_id = conversation.id
        JOIN channel_identity ON conversation.channel_identity_id = channel_identity.id
        WHERE channel_identity.external_id = :chat"""

    def turn(said: str) -> str:
        """One message, delivered twice by Telegram; what the bot sent back."""
        update_id = next(update_ids)
        before = len(telegram.sent_to(chat))
        body = json.dumps(text_update(update_id, chat, said)).encode()
        for _ in range(2):  # Telegram delivers the update again
            req = urllib.request.Request(
                f"{stack.gateway}/webhooks/telegram",
                data=body,
                headers={"Content-Type": "application/json", SECRET_HEADER: TELEGRAM_SECRET},
            )
            with urllib.request.urlopen(req, timeout=30) as resp:
                assert resp.status == 200

        def answered() -> bool:
            status = scalar(
                stack,
                f"SELECT min(message.status) {conversation} AND message.channel_message_id = :u",
                chat=str(chat),
                u=str(update_id),
            )
            replies = scalar(
                stack,
                f"SELECT count(*) {conversation} AND message.sender != 'citizen'",
                chat=str(chat),
            )
            return status == "processed" and len(telegram.sent_to(chat)) == replies

        wait(answered, 60, f"the answer to {said!r}")
        return "\n".join(telegram.sent_to(chat)[before:])

    answer = turn("我要反映问题，小区门口路灯坏了一个多月了晚上特别黑")
    turns, number = 1, None
    for _ in range(12):
        number = find_in_text(answer)
        if number:
            break
        reply = next((a for keys, a in ANSWERS if any(k in answer for k in keys)), None)
        assert reply is not None, f"the form asked something a citizen cannot answer: {answer!r}"
        answer = turn(reply)
        turns += 1
    assert number, "no tracking number after 12 turns"
    said = scalar(
        stack, f"SELECT count(*) {conversation} AND message.sender = 'citizen'", chat=str(chat)
    )
    assert said == turns
    orders = scalar(
        stack,
        """SELECT count(*) FROM work_order JOIN channel_identity
           ON work_order.channel_identity_id = channel_identity.id
           WHERE channel_identity.external_id = :chat""",
        chat=str(chat),
    )
    assert orders == 1


def test_rasa_killed_mid_form_the_citizen_hears_back_within_5_s(running) -> None:
    stack, procs = running
    sender = f"rel-{uuid.uuid4().hex[:8]}"
    first = text_of(say(stack, sender, "我要反映问题，小区门口路灯坏了一个多月了晚上特别黑"))
    assert find_in_text(first) is None and first  # the form asks its first question

    rasa = procs[1]
    rasa.send_signal(signal.SIGKILL)  # Rasa dies in the middle of the form
    rasa.wait(timeout=10)
    started = time.monotonic()
    replies = say(stack, sender, "幸福小区东门，某某路12号")
    assert time.monotonic() - started < 5.0
    assert "抱歉" in text_of(replies) and "人工" in text_of(replies)

    # Nothing is lost: the message is stored and the chat waits for an agent.
    assert citizen_texts(stack, sender).count("幸福小区东门，某某路12号") == 1
    reason = scalar(
        stack,
        """SELECT handoff.reason FROM handoff JOIN conversation
           ON handoff.conversation_id = conversation.id JOIN channel_identity
           ON conversation.channel_identity_id = channel_identity.id
           WHERE channel_identity.external_id = :sender AND handoff.state = 'pending'""",
        sender=sender,
    )
    assert reason == "rasa_down"
    with pytest.raises(urllib.error.URLError):  # Rasa really is gone
        urllib.request.urlopen(stack.rasa + "/webhooks/rest/", timeout=2)
    assert isinstance(procs[2], subprocess.Popen) and procs[2].poll() is None  # gateway lives
