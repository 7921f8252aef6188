"""The status template's data as WeChat will show it (one line, at most 20 characters a field)."""

from __future__ import annotations

from bot.channels.wechat_template import StatusTemplate
from bot.messages import StatusNotice

NOTICE = StatusNotice(
    tracking_no="12345-20260105-7KQ4M9X2A",
    status="已办结（已评价）\n多余的第二行文字也会被截断到二十个字以内",
    time="2026年1月5日 14:30",
    url="https://12345.example.gov.cn/lookup",
)


def test_no_template_id_means_no_template() -> None:
    assert StatusTemplate.from_settings("  ", "keyword1,keyword2,keyword3") is None


def test_blank_field_names_fall_back_to_keywords() -> None:
    template = StatusTemplate.from_settings("TPL", " , ")
    assert template is not None and template.fields == ("keyword1", "keyword2", "keyword3")


def test_fields_are_one_line_and_short_but_the_number_is_whole() -> None:
    template = StatusTemplate.from_settings("TPL", "character_string1,thing2,time3")
    assert template is not None
    data = template.data(NOTICE)
    assert data["character_string1"] == "12345-20260105-7KQ4M9X2A"  # 24 characters, not cut
    assert data["thing2"] == "已办结（已评价） 多余的第二行文字也会被"
    assert data["time3"] == "2026年1月5日 14:30"
    assert all(len(v) <= 20 and "\n" not in v for k, v in data.items() if k != "character_string1")
    assert data["remark"] == "点击可查看工单详情"


def test_two_fields_are_enough() -> None:
    template = StatusTemplate.from_settings("TPL", "keyword1,keyword2")
    assert template is not None
    data = template.data(StatusNotice("12345-20260105-7KQ4M9X2A", "办理中", "2026年1月5日 14:30"))
    assert set(data) == {"first", "keyword1", "keyword2", "remark"}
    assert data["remark"] == "如有疑问，请回复消息或拨打12345"
