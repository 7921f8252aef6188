"""Undoing a link in chat: "解绑" / "解除绑定" makes the channel the citizen writes from a citizen
of its own again (store.links.unlink_identity: the orders filed through this channel come
along, the others stay). When the channel is linked to nothing else but has a verified phone,
the phone is forgotten instead, so a later verification of that number does not merge into it.
"""

from __future__ import annotations

import logging
import re

from aiohttp import web

from bot.keys import DB
from bot.linking import channel_name
from bot.messages import InboundMessage, Reply
from bot.text import clean_text, for_nlu
from store import conversations, links

log = logging.getLogger(__name__)

COMMAND = re.compile(r"(?:解除绑定|解绑|取消绑定|解除关联|取消关联)(?:账号|手机号?)?[。.!！]?")

UNLINKED = (
    "已解除绑定：本渠道（{channel}）不再与{others}关联。"
    "本渠道登记的工单仍可在本渠道查询和接收进度通知，其他渠道登记的工单留在原账号。"
    "如需重新关联，请发送“绑定”。"
)
PHONE_FORGOTTEN = "已解除本账号与已验证手机号的绑定。如需重新关联，请发送“验证手机”。"
NOTHING = "本渠道没有与其他渠道或手机号绑定，无需解绑。"


def parse(text: str) -> bool:
    """True if `text` is an unlink command."""
    return COMMAND.fullmatch(for_nlu(clean_text(text)).strip()) is not None


async def intercept(app: web.Application, msg: InboundMessage) -> list[Reply] | None:
    """Answer "解绑", "解除绑定", "取消关联" …; None for every other message."""
    if not parse(msg.text):
        return None
    async with app[DB].session() as s:
        conv = await conversations.ensure_conversation(
            s, msg.channel, msg.external_id, msg.metadata.get("display_name")
        )
        identity = await conversations.identity_of(s, conv)
        try:
            result = await links.unlink_identity(s, identity.id, by="citizen")
        except links.NotLinked:
            forgot = await links.forget_phone(s, identity.citizen_id)
            return [Reply(PHONE_FORGOTTEN if forgot else NOTHING)]
        others = [channel_name(c) for c in await links.linked_channels(s, result.old_citizen_id)]
    log.info("identity %s unlinked itself (%s orders moved)", identity.id, result.orders_moved)
    return [Reply(UNLINKED.format(channel=channel_name(msg.channel), others="、".join(others)))]
