"""Issue 9 end to end through the REST channel, with the real gateway, Rasa and action server:
a stranger who files a work order through the form with a victim's mobile number does not
become the victim. "我的工单" shows only the stranger's own order, and the victim's tracking
number still needs the last 4 digits of the victim's phone."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.conftest import Stack
from tests.e2e.test_rest_end_to_end import PHONE, file_a_work_order, say, text_of

pytestmark = pytest.mark.e2e


def test_stranger_filing_with_a_victims_phone_sees_nothing_of_the_victim(stack: Stack) -> None:
    victim = f"e2e-victim-{uuid.uuid4().hex[:8]}"
    victims = file_a_work_order(stack, victim)  # files with PHONE
    stranger = f"e2e-stranger-{uuid.uuid4().hex[:8]}"
    strangers = file_a_work_order(stack, stranger)  # gives the same PHONE in the form
    assert strangers != victims

    mine = text_of(say(stack, stranger, "我的工单"))
    assert strangers in mine and victims not in mine

    asked = text_of(say(stack, stranger, f"查询工单 {victims}"))
    assert "已受理" not in asked and ("尾号" in asked or "后4位" in asked or "后四位" in asked)

    # The victim's own view is unchanged, and the right digits still open the order to anyone.
    assert victims in text_of(say(stack, victim, "我的工单"))
    assert strangers not in text_of(say(stack, victim, "我的工单"))
    status = text_of(say(stack, stranger, PHONE[-4:]))
    assert victims in status and "已受理" in status
