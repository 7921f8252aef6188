"""The WeChat Official Account (公众号) server protocol: signatures, AES safe mode, XML.

Our own small implementation (see research/protocols.md §1): SHA-1 signatures compared in
constant time, AES-256-CBC with the key from EncodingAESKey and PKCS#7 padding to 32-byte
blocks, XML parsed with defusedxml (no DTDs, no entities) and rendered with CDATA sections that
escape `]]>`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import struct
import time
from xml.etree.ElementTree import ParseError

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

BLOCK = 32  # WeChat pads to 32-byte blocks, not AES's 16
# Characters XML 1.0 does not allow, even inside CDATA.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


class ProtocolError(ValueError):
    """The request does not follow the WeChat protocol (bad XML, bad ciphertext, wrong AppID)."""


def signature(token: str, *parts: str) -> str:
    """SHA-1 hex of the lexicographically sorted token and parts, concatenated."""
    return hashlib.sha1("".join(sorted([token, *parts])).encode()).hexdigest()  # noqa: S324


def check_signature(token: str, given: str, *parts: str) -> bool:
    """True if `given` is the signature of token and parts (constant-time compare)."""
    return hmac.compare_digest(signature(token, *parts).encode(), given.encode())


def new_nonce() -> str:
    """A fresh nonce for an encrypted reply."""
    return secrets.token_hex(8)


class WeChatCipher:
    """AES safe mode: `random(16) + len(4, big-endian) + msg + appid`, AES-256-CBC, IV=key[:16]."""

    def __init__(self, encoding_aes_key: str, app_id: str) -> None:
        try:
            key = base64.b64decode(encoding_aes_key + "=", validate=True)
        except binascii.Error as exc:
            raise ValueError("WECHAT_ENCODING_AES_KEY is not valid base64") from exc
        if len(key) != 32:
            raise ValueError("WECHAT_ENCODING_AES_KEY must be the 43 characters from the console")
        self._key = key
        self._app_id = app_id.encode()

    def _cipher(self) -> Cipher:
        return Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16]))

    def encrypt(self, text: str) -> str:
        """Base64 ciphertext of `text` (a whole XML document) for the `Encrypt` element."""
        raw = text.encode()
        plain = secrets.token_bytes(16) + struct.pack(">I", len(raw)) + raw + self._app_id
        pad = BLOCK - len(plain) % BLOCK
        plain += bytes([pad]) * pad
        enc = self._cipher().encryptor()
        return base64.b64encode(enc.update(plain) + enc.finalize()).decode()

    def decrypt(self, encrypted: str) -> str:
        """The XML inside `Encrypt`; raises ProtocolError on bad padding, length or AppID."""
        try:
            data = base64.b64decode(encrypted, validate=True)
        except binascii.Error as exc:
            raise ProtocolError("Encrypt is not base64") from exc
        if not data or len(data) % 16:
            raise ProtocolError("ciphertext length is not a multiple of the AES block")
        dec = self._cipher().decryptor()
        plain = dec.update(data) + dec.finalize()
        pad = plain[-1]
        if not 1 <= pad <= BLOCK or plain[-pad:] != bytes([pad]) * pad:
            raise ProtocolError("bad padding")
        plain = plain[:-pad]
        if len(plain) < 20:
            raise ProtocolError("plaintext too short")
        (length,) = struct.unpack(">I", plain[16:20])
        msg, app_id = plain[20 : 20 + length], plain[20 + length :]
        if len(msg) != length or not hmac.compare_digest(app_id, self._app_id):
            raise ProtocolError("AppID does not match")
        try:
            return msg.decode()
        except UnicodeDecodeError as exc:
            raise ProtocolError("message is not UTF-8") from exc


def parse_xml(body: bytes | str) -> dict[str, str]:
    """The flat `<xml><Name>value</Name>…</xml>` document as a dict.

    DTDs, entity declarations and external references are refused (defusedxml).
    """
    try:
        root = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ParseError, DefusedXmlException, ValueError) as exc:
        raise ProtocolError(f"malformed XML: {type(exc).__name__}") from exc
    if root.tag != "xml":
        raise ProtocolError("root element must be <xml>")
    return {child.tag: (child.text or "").strip() for child in root}


def cdata(text: str) -> str:
    """`text` as a CDATA section; `]]>` inside it is split so it cannot close the section."""
    text = _XML_ILLEGAL.sub("", text)
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def render_text(to_user: str, from_user: str, content: str, create_time: int | None = None) -> str:
    """A passive text reply (`MsgType=text`)."""
    ts = int(time.time()) if create_time is None else create_time
    return (
        f"<xml><ToUserName>{cdata(to_user)}</ToUserName>"
        f"<FromUserName>{cdata(from_user)}</FromUserName>"
        f"<CreateTime>{ts}</CreateTime>"
        f"<MsgType>{cdata('text')}</MsgType>"
        f"<Content>{cdata(content)}</Content></xml>"
    )


def render_encrypted(token: str, cipher: WeChatCipher, xml: str) -> str:
    """Wrap a reply for safe mode: fresh timestamp and nonce, MsgSignature over the ciphertext."""
    encrypted = cipher.encrypt(xml)
    timestamp, nonce = str(int(time.time())), new_nonce()
    sig = signature(token, timestamp, nonce, encrypted)
    return (
        f"<xml><Encrypt>{cdata(encrypted)}</Encrypt>"
        f"<MsgSignature>{cdata(sig)}</MsgSignature>"
        f"<TimeStamp>{timestamp}</TimeStamp>"
        f"<Nonce>{cdata(nonce)}</Nonce></xml>"
    )
