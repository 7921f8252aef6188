"""The WeChat template message a work-order status push falls back to outside the 48-hour
customer-service window (research/protocols.md §1.7).

The template is chosen in the 公众号 console (模板消息 → 模板库); its id and the names of the
three fields that carry the tracking number, the status and the time of change are settings
(WECHAT_TEMPLATE_STATUS_ID, WECHAT_TEMPLATE_STATUS_FIELDS), so both older industry templates
(`keyword1` …) and category templates (`character_string1`, `thing2`, `time3` …) fit. `first` and
`remark` are sent too: WeChat has stopped showing them since May 2023, but older templates and
test accounts still read them. WeChat shows at most 20 characters per field and no line breaks.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.messages import StatusNotice

MAX_CHARS = 20
FIRST = "您的12345工单有新进展"
REMARK_WITH_LINK = "点击可查看工单详情"
REMARK = "如有疑问，请回复消息或拨打12345"
DEFAULT_FIELDS = ("keyword1", "keyword2", "keyword3")


def one_line(value: str, limit: int | None = MAX_CHARS) -> str:
    """`value` on one line, cut to `limit` characters (None: not cut)."""
    flat = " ".join(value.split())
    return flat if limit is None else flat[:limit]


@dataclass(frozen=True)
class StatusTemplate:
    """Which template to send and which of its fields get what."""

    template_id: str
    fields: tuple[str, ...] = DEFAULT_FIELDS  # tracking number, status, time (may be fewer)

    @classmethod
    def from_settings(cls, template_id: str, fields: str) -> StatusTemplate | None:
        """None when no template id is configured."""
        template_id = template_id.strip()
        if not template_id:
            return None
        names = tuple(f.strip() for f in fields.split(","))
        return cls(template_id, names[:3] if any(names) else DEFAULT_FIELDS)

    def data(self, notice: StatusNotice) -> dict[str, str]:
        """The template's `data`: field name → plain text (the client wraps it as `{"value"}`).

        The tracking number is never cut: a cut number is useless to the citizen (choose a
        字符串 field, which holds 32 characters, for it in a category template).
        """
        values = (
            one_line(notice.tracking_no, None),
            one_line(notice.status),
            one_line(notice.time),
        )
        data = {"first": FIRST}
        for name, value in zip(self.fields, values, strict=False):
            if name:
                data[name] = value
        data["remark"] = REMARK_WITH_LINK if notice.url else REMARK
        return data
