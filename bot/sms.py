"""Outbound SMS for one-time codes: one `SmsSender` contract, one class per provider.

Provider: Aliyun SMS (dysmsapi, `Action=SendSms`, API version 2017-05-25) with the RPC-style
signature (SignatureVersion 1.0): every parameter except `Signature` is sorted by name and
percent-encoded per RFC 3986 (space as %20, `~` kept), joined as `k=v&...`; the string to sign
is `<METHOD>&%2F&` + percent-encode(that query) (we POST the form, so `POST&%2F&...`); the
signature is base64(HMAC-SHA1(secret + "&", string to sign)).
Aliyun answers JSON with `Code` "OK" or an error code (`isv.BUSINESS_LIMIT_CONTROL` when the
carrier's per-number limit is hit, `SignatureDoesNotMatch` with HTTP 400, ...).

A code is sent while the citizen waits for the answer, not through the outbox: a code that
arrives minutes later is useless, and the citizen must be told now whether it went out.

Errors: `SmsError(code, message, retry=)`. `retry=True` means the same request may pass if sent
again soon (network, HTTP 5xx, Aliyun's own system errors); `retry=False` means it will not
(a rejected number, a limit, a configuration problem such as a wrong key or template).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import quote

import aiohttp

from bot.settings import Settings
from store.crypto import mask_phone

log = logging.getLogger(__name__)

API_VERSION = "2017-05-25"
OK = "OK"
BUSINESS_LIMIT = "isv.BUSINESS_LIMIT_CONTROL"  # the carrier's per-number frequency limit
BAD_NUMBER = "isv.MOBILE_NUMBER_ILLEGAL"
UNREACHABLE = "UNREACHABLE"  # ours: transport error, HTTP 5xx, or an answer that is not JSON
TRANSIENT = frozenset({UNREACHABLE, "isp.SYSTEM_ERROR", "ServiceUnavailable", "Throttling"})


class SmsError(RuntimeError):
    """The SMS was not accepted; `code` is the provider's error code (or UNREACHABLE)."""

    def __init__(self, code: str, message: str, *, retry: bool) -> None:
        super().__init__(f"SMS refused: {code}: {message}")
        self.code = code
        self.message = message
        self.retry = retry


class SmsSender(Protocol):
    """Sends one verification code to one mainland mobile number."""

    async def send_code(self, phone: str, code: str) -> str:
        """Send `code` to `phone`; returns the provider's message id, or raises SmsError."""
        ...


def percent_encode(value: str) -> str:
    """Aliyun's POP encoding: RFC 3986 unreserved characters kept, everything else %XX."""
    return quote(value, safe="~")


def canonical_query(params: Mapping[str, str]) -> str:
    """Parameters sorted by name, each `encode(k)=encode(v)`, joined by `&`."""
    return "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(params.items()))


def string_to_sign(params: Mapping[str, str], method: str = "GET") -> str:
    """`METHOD&%2F&` + the percent-encoded canonical query (Signature itself excluded)."""
    query = canonical_query({k: v for k, v in params.items() if k != "Signature"})
    return f"{method}&{percent_encode('/')}&{percent_encode(query)}"


def sign(params: Mapping[str, str], secret: str, method: str = "GET") -> str:
    """base64(HMAC-SHA1(secret + "&", string_to_sign))."""
    digest = hmac.new(
        f"{secret}&".encode(), string_to_sign(params, method).encode(), hashlib.sha1
    ).digest()
    return base64.b64encode(digest).decode()


def _utc_timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class AliyunSms:
    """Aliyun SMS SendSms with a verification-code template (`${code}` in the template)."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        endpoint: str,
        access_key_id: str,
        access_key_secret: str,
        sign_name: str,
        template_code: str,
        region: str = "cn-hangzhou",
        timeout: float = 5.0,
        clock: Callable[[], str] = _utc_timestamp,
    ) -> None:
        self.http = http
        self.endpoint = endpoint.rstrip("/") + "/"
        self.access_key_id = access_key_id
        self._secret = access_key_secret
        self.sign_name = sign_name
        self.template_code = template_code
        self.region = region
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.clock = clock

    def signed_params(self, phone: str, code: str) -> dict[str, str]:
        """Every query parameter of one SendSms call, `Signature` included."""
        params = {
            "AccessKeyId": self.access_key_id,
            "Action": "SendSms",
            "Format": "JSON",
            "PhoneNumbers": phone,
            "RegionId": self.region,
            "SignName": self.sign_name,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": uuid.uuid4().hex,
            "SignatureVersion": "1.0",
            "TemplateCode": self.template_code,
            "TemplateParam": json.dumps({"code": code}, separators=(",", ":")),
            "Timestamp": self.clock(),
            "Version": API_VERSION,
        }
        params["Signature"] = sign(params, self._secret, "POST")
        return params

    async def send_code(self, phone: str, code: str) -> str:
        """`POST /` with `Action=SendSms&...` as a form → Aliyun's BizId; SmsError unless `Code`
        is "OK". POST keeps the number and the code out of URLs that proxies log."""
        body = canonical_query(self.signed_params(phone, code))
        try:
            async with self.http.post(
                self.endpoint,
                data=body.encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
                timeout=self.timeout,
            ) as resp:
                if resp.status >= 500:
                    raise SmsError(UNREACHABLE, f"HTTP {resp.status}", retry=True)
                data = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise SmsError(UNREACHABLE, type(exc).__name__, retry=True) from exc
        if not isinstance(data, dict):
            raise SmsError(UNREACHABLE, "answer is not a JSON object", retry=True)
        result = str(data.get("Code", ""))
        if result != OK:
            error = SmsError(result, str(data.get("Message", "")), retry=result in TRANSIENT)
            level = logging.INFO if result in (BUSINESS_LIMIT, BAD_NUMBER) else logging.ERROR
            log.log(level, "SMS to %s refused: %s", mask_phone(phone), error)
            raise error
        log.info("SMS code sent to %s (%s)", mask_phone(phone), data.get("BizId"))
        return str(data.get("BizId", ""))


def sender_from_settings(settings: Settings, http: aiohttp.ClientSession) -> SmsSender | None:
    """The configured sender, or None when SMS is not set up (verification is then off)."""
    secret = settings.sms_access_key_secret.get_secret_value()
    needed = (
        settings.sms_access_key_id,
        secret,
        settings.sms_sign_name,
        settings.sms_template_code,
    )
    if not any(needed):
        return None
    if settings.sms_provider != "aliyun" or not all(needed):
        log.warning(
            "SMS verification is off: SMS_PROVIDER must be aliyun and SMS_ACCESS_KEY_ID, "
            "SMS_ACCESS_KEY_SECRET, SMS_SIGN_NAME and SMS_TEMPLATE_CODE all set"
        )
        return None
    return AliyunSms(
        http,
        endpoint=settings.sms_endpoint,
        access_key_id=settings.sms_access_key_id,
        access_key_secret=secret,
        sign_name=settings.sms_sign_name,
        template_code=settings.sms_template_code,
        region=settings.sms_region,
    )
