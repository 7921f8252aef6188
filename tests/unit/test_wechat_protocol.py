"""Our WeChat protocol code against wechatpy as an independent peer."""

from __future__ import annotations

import base64
import os

import pytest
from defusedxml.ElementTree import fromstring
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidSignatureException
from wechatpy.utils import WeChatSigner, check_signature

from bot.channels import wechat_protocol as wp

TOKEN = "unit-token"
APP_ID = "wx0123456789abcdef"
AES_KEY = base64.b64encode(os.urandom(32)).decode().rstrip("=")  # 43 chars, like the console's


def wechatpy_signature(*parts: str) -> str:
    signer = WeChatSigner()
    signer.add_data(*parts)
    return signer.signature


def test_signature_matches_wechatpy() -> None:
    sig = wp.signature(TOKEN, "1700000000", "nonce1")
    check_signature(TOKEN, sig, "1700000000", "nonce1")  # raises if different
    assert wp.check_signature(TOKEN, sig, "1700000000", "nonce1")
    assert not wp.check_signature(TOKEN, sig, "1700000001", "nonce1")
    assert not wp.check_signature("other-token", sig, "1700000000", "nonce1")
    assert not wp.check_signature(TOKEN, "", "1700000000", "nonce1")


def test_wrong_signature_is_also_wrong_for_wechatpy() -> None:
    with pytest.raises(InvalidSignatureException):
        check_signature(TOKEN, wp.signature(TOKEN, "1", "2") + "0", "1", "2")


def test_we_decrypt_what_wechatpy_encrypts() -> None:
    inner = (
        "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[o1]]></FromUserName>"
        "<CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        "<Content><![CDATA[社保怎么交😀]]></Content><MsgId>42</MsgId></xml>"
    )
    wrapped = WeChatCrypto(TOKEN, AES_KEY, APP_ID).encrypt_message(inner, "n1", "1700000000")
    fields = wp.parse_xml(wrapped)
    assert wp.check_signature(TOKEN, fields["MsgSignature"], "1700000000", "n1", fields["Encrypt"])
    msg = wp.parse_xml(wp.WeChatCipher(AES_KEY, APP_ID).decrypt(fields["Encrypt"]))
    assert msg["Content"] == "社保怎么交😀"
    assert msg["MsgId"] == "42"


def test_wechatpy_decrypts_our_encrypted_reply_with_cdata_terminator() -> None:
    cipher = wp.WeChatCipher(AES_KEY, APP_ID)
    content = "答复]]>含有结束符😀\n第二行 <b>&amp;"
    reply = wp.render_encrypted(TOKEN, cipher, wp.render_text("o1", "gh_1", content, 1700000000))
    fields = wp.parse_xml(reply)
    plain = WeChatCrypto(TOKEN, AES_KEY, APP_ID).decrypt_message(
        reply, fields["MsgSignature"], fields["TimeStamp"], fields["Nonce"]
    )
    parsed = parse_message(plain)
    assert parsed.type == "text"
    assert parsed.content == content
    assert parsed.source == "gh_1" and parsed.target == "o1"


def test_each_encryption_uses_a_fresh_random_prefix_and_pads_to_32_bytes() -> None:
    cipher = wp.WeChatCipher(AES_KEY, APP_ID)
    one, two = cipher.encrypt("<xml/>"), cipher.encrypt("<xml/>")
    assert one != two
    assert len(base64.b64decode(one)) % 32 == 0
    assert cipher.decrypt(one) == cipher.decrypt(two) == "<xml/>"


def test_ciphertext_for_another_appid_is_refused() -> None:
    other = WeChatCrypto(TOKEN, AES_KEY, "wxANOTHERAPPID00000")
    wrapped = other.encrypt_message("<xml><Content>x</Content></xml>", "n", "1")
    encrypt = wp.parse_xml(wrapped)["Encrypt"]
    with pytest.raises(wp.ProtocolError):
        wp.WeChatCipher(AES_KEY, APP_ID).decrypt(encrypt)


@pytest.mark.parametrize("garbage", ["not base64!!", base64.b64encode(b"short").decode(), ""])
def test_garbage_ciphertext_is_a_protocol_error(garbage: str) -> None:
    with pytest.raises(wp.ProtocolError):
        wp.WeChatCipher(AES_KEY, APP_ID).decrypt(garbage)


def test_bad_encoding_aes_key_is_refused_at_start() -> None:
    with pytest.raises(ValueError):
        wp.WeChatCipher("too-short", APP_ID)


def test_cdata_escapes_terminator_and_stays_well_formed() -> None:
    text = "a]]>b]]>]]>c\x00\x07d"
    doc = f"<xml><Content>{wp.cdata(text)}</Content></xml>"
    assert fromstring(doc).find("Content").text == "a]]>b]]>]]>cd"


def test_plain_reply_parses_with_wechatpy() -> None:
    xml = wp.render_text("openid-1", "gh_abc", "您好]]><script>", 1700000000)
    parsed = parse_message(xml)
    assert parsed.content == "您好]]><script>"
    assert parsed.target == "openid-1"
    assert parsed.source == "gh_abc"


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><xml><Content>&a;</Content></xml>',
        b'<!DOCTYPE xml SYSTEM "http://127.0.0.1:9/x.dtd"><xml><Content>x</Content></xml>',
        b"<xml><Content>unclosed</xml>",
        b"<html><Content>x</Content></html>",
        b"",
        b'{"json": true}',
    ],
)
def test_parse_xml_refuses_dtds_entities_and_malformed_input(body: bytes) -> None:
    with pytest.raises(wp.ProtocolError):
        wp.parse_xml(body)


def test_parse_xml_reads_flat_fields() -> None:
    body = (
        b"<xml><ToUserName><![CDATA[gh_1]]></ToUserName><MsgType><![CDATA[event]]></MsgType>"
        b"<Event><![CDATA[CLICK]]></Event><EventKey><![CDATA[FAQ_SI]]></EventKey></xml>"
    )
    assert wp.parse_xml(body) == {
        "ToUserName": "gh_1",
        "MsgType": "event",
        "Event": "CLICK",
        "EventKey": "FAQ_SI",
    }
