"""Issue 9, "let the owner in through a verified phone", end to end through the REST channel with
the real gateway, Rasa and action server, and SMS going to the local fake of Aliyun SMS (run in a
thread of its own, since the processes under test call it while this test waits on them).

A citizen proves their phone by an SMS code and files a work order. From a new channel the
order's number alone asks for the phone's last 4 digits; after the citizen proves the same phone
there by SMS (the two channels become one citizen), the number alone shows the status.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Stack, start_stack, stop
from tests.e2e.test_rest_end_to_end import PHONE, file_a_work_order, say, text_of
from tests.fakes.aliyun_sms import FakeAliyunSms

pytestmark = pytest.mark.e2e

MASKED = f"{PHONE[:3]}****{PHONE[-4:]}"
COOLDOWN_SECONDS = 61  # store/phone_verification.py: one code per phone a minute


class ThreadedFake:
    """A fake outside service on its own event loop in a daemon thread."""

    def __init__(self, fake: FakeAliyunSms) -> None:
        self.fake = fake
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> FakeAliyunSms:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.fake.start(), self.loop).result(10)
        return self.fake

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.fake.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def sms_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, FakeAliyunSms]]:
    """The product on the SQLite default, with SMS verification pointed at the fake."""
    tmp: Path = tmp_path_factory.mktemp("sms-stack")
    with ThreadedFake(FakeAliyunSms()) as fake:
        env = {
            "SMS_ENDPOINT": fake.url,
            "SMS_ACCESS_KEY_ID": fake.access_key_id,
            "SMS_ACCESS_KEY_SECRET": fake.access_key_secret,
            "SMS_SIGN_NAME": next(iter(fake.sign_names)),
            "SMS_TEMPLATE_CODE": next(iter(fake.template_codes)),
        }
        running, procs = start_stack(tmp, f"sqlite:///{tmp / 'hotline.db'}", env)
        try:
            yield running, fake
        finally:
            stop(procs)


def verify_phone(stack: Stack, fake: FakeAliyunSms, sender: str) -> str:
    """ "验证手机 <phone>", then the code the SMS brought; the last reply's text."""
    before = len(fake.codes_for(PHONE))
    sent = text_of(say(stack, sender, f"验证手机 {PHONE}"))
    assert MASKED in sent and PHONE not in sent, sent
    codes = fake.codes_for(PHONE)
    assert len(codes) == before + 1
    return text_of(say(stack, sender, codes[-1]))


def test_a_citizen_who_verified_the_phone_looks_up_from_a_new_channel_without_digits(
    sms_stack: tuple[Stack, FakeAliyunSms],
) -> None:
    stack, fake = sms_stack
    first = f"e2e-first-{uuid.uuid4().hex[:8]}"
    assert "验证成功" in verify_phone(stack, fake, first)
    first_code_at = time.monotonic()
    number = file_a_work_order(stack, first)  # gives PHONE in the form too

    # A new channel: the number alone is not enough, the status stays hidden.
    second = f"e2e-second-{uuid.uuid4().hex[:8]}"
    asked = text_of(say(stack, second, f"查询工单 {number}"))
    assert "已受理" not in asked and re.search("后4位|后四位|尾号", asked), asked
    assert number not in text_of(say(stack, second, "我的工单"))

    # The same phone proved by SMS on the new channel makes both channels one citizen.
    time.sleep(max(0.0, COOLDOWN_SECONDS - (time.monotonic() - first_code_at)))
    linked = verify_phone(stack, fake, second)
    assert "验证成功" in linked and "关联" in linked, linked

    status = text_of(say(stack, second, f"查询工单 {number}"))
    assert number in status and "已受理" in status, status
    assert "后4位" not in status
    assert number in text_of(say(stack, second, "我的工单"))
    assert len(fake.codes_for(PHONE)) == 2
