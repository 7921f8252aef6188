"""A local stand-in for Aliyun SMS (dysmsapi.aliyuncs.com): `SendSms`, RPC style, on GET or POST.

It checks what Aliyun checks and answers with Aliyun's JSON: the signature is recomputed here,
independently of the client, from the parameters as received (`SignatureDoesNotMatch`, HTTP
400, with the server's string to sign in the message); an unknown AccessKeyId is
`InvalidAccessKeyId.NotFound` (404); a Timestamp more than 15 minutes off is
`InvalidTimeStamp.Expired` (400); a reused SignatureNonce is `SignatureNonceUsed` (400); a
missing parameter is `MissingParameter` (400). With a valid signature, business errors come
with HTTP 200: an unknown SignName `isv.SMS_SIGNATURE_ILLEGAL`, an unknown TemplateCode
`isv.SMS_TEMPLATE_ILLEGAL`, a bad number `isv.MOBILE_NUMBER_ILLEGAL`, TemplateParam that is not
JSON `isv.INVALID_JSON_PARAM`, and more than `per_number_limit` messages to one number
`isv.BUSINESS_LIMIT_CONTROL` (the carriers' frequency limit). A test can also queue error codes
(`errors`) or HTTP statuses (`http_errors`) for the next sends.

Every accepted message is recorded (`messages`), so a test reads the code from "the SMS".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from tests.fakes.server import LocalServer

MESSAGES = {
    "isv.SMS_SIGNATURE_ILLEGAL": "该账号下找不到对应签名",
    "isv.SMS_TEMPLATE_ILLEGAL": "该账号下找不到对应模板",
    "isv.MOBILE_NUMBER_ILLEGAL": "手机号码格式错误",
    "isv.INVALID_JSON_PARAM": "JSON参数不合法，只接受字符串值",
    "isv.BUSINESS_LIMIT_CONTROL": "触发号码天级流控Permits:10",
    "isv.AMOUNT_NOT_ENOUGH": "账户余额不足",
    "isp.SYSTEM_ERROR": "isp.SYSTEM_ERROR",
}
REQUIRED = (
    "AccessKeyId",
    "Action",
    "PhoneNumbers",
    "SignName",
    "Signature",
    "SignatureMethod",
    "SignatureNonce",
    "SignatureVersion",
    "TemplateCode",
    "Timestamp",
    "Version",
)


@dataclass(frozen=True)
class Sms:
    """One message Aliyun accepted."""

    phone: str
    sign_name: str
    template_code: str
    params: dict[str, str]
    biz_id: str

    @property
    def code(self) -> str:
        """The `code` variable of the template (what the citizen reads on the phone)."""
        return json.loads(self.params["TemplateParam"])["code"]


def _encode(value: str) -> str:
    # RFC 3986: A-Z a-z 0-9 - _ . ~ stay, everything else (UTF-8 bytes) becomes %XX.
    return "".join(
        ch
        if re.fullmatch(r"[A-Za-z0-9\-_.~]", ch)
        else "".join(f"%{b:02X}" for b in ch.encode("utf-8"))
        for ch in value
    )


def expected_signature(params: dict[str, str], secret: str, method: str) -> tuple[str, str]:
    """(string to sign, signature) as Aliyun computes them for these received parameters."""
    pairs = sorted((k, v) for k, v in params.items() if k != "Signature")
    query = "&".join(f"{_encode(k)}={_encode(v)}" for k, v in pairs)
    to_sign = f"{method}&%2F&{_encode(query)}"
    digest = hmac.new(f"{secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()
    return to_sign, base64.b64encode(digest).decode()


class FakeAliyunSms(LocalServer):
    """Start with `await fake.start()`; `fake.url` is the endpoint (SMS_ENDPOINT)."""

    def __init__(
        self,
        access_key_id: str = "LTAI-test-key",
        access_key_secret: str = "test-secret-" + uuid.uuid4().hex,
        sign_name: str = "12345热线",
        template_code: str = "SMS_123456789",
    ) -> None:
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.sign_names = {sign_name}
        self.template_codes = {template_code}
        self.messages: list[Sms] = []
        self.requests: list[dict[str, str]] = []  # every request's parameters, accepted or not
        self.errors: list[str] = []  # Aliyun error codes to answer the next valid sends with
        self.http_errors: list[int] = []  # HTTP statuses (5xx) of the front to answer with
        self.per_number_limit = 10
        self._nonces: set[str] = set()
        self._ids = itertools.count(1)
        app = web.Application()
        app.router.add_route("GET", "/", self._rpc)
        app.router.add_route("POST", "/", self._rpc)
        super().__init__(app)

    @property
    def url(self) -> str:
        """The endpoint to configure the client with."""
        return self.url_for()

    def codes_for(self, phone: str) -> list[str]:
        """The codes sent to `phone`, oldest first."""
        return [m.code for m in self.messages if m.phone == phone]

    def last_code(self, phone: str) -> str:
        """The latest code sent to `phone` (fails the test if none was)."""
        codes = self.codes_for(phone)
        assert codes, f"no SMS was sent to {phone}"
        return codes[-1]

    @staticmethod
    def _answer(code: str, message: str, status: int = 200, **extra: Any) -> web.Response:
        body = {"RequestId": str(uuid.uuid4()).upper(), "Code": code, "Message": message, **extra}
        return web.json_response(body, status=status)

    async def _rpc(self, request: web.Request) -> web.Response:
        params = dict(request.query)
        if request.method == "POST":
            params.update(dict(await request.post()))  # type: ignore[arg-type]
        self.requests.append(params)
        if self.http_errors:
            return web.Response(status=self.http_errors.pop(0), text="<html>bad gateway</html>")
        missing = [k for k in REQUIRED if not params.get(k)]
        if missing:
            return self._answer(
                "MissingParameter", f'The input parameter "{missing[0]}" is missing.', 400
            )
        if params["AccessKeyId"] != self.access_key_id:
            return self._answer(
                "InvalidAccessKeyId.NotFound", "Specified access key is not found.", 404
            )
        if params["SignatureMethod"] != "HMAC-SHA1" or params["SignatureVersion"] != "1.0":
            return self._answer("InvalidParameter", "SignatureMethod or Version is invalid.", 400)
        to_sign, signature = expected_signature(params, self.access_key_secret, request.method)
        if not hmac.compare_digest(signature, params["Signature"]):
            return self._answer(
                "SignatureDoesNotMatch",
                "Specified signature does not match our calculation. "
                f"server string to sign is:{to_sign}",
                400,
                HostId="dysmsapi.aliyuncs.com",
                Recommend="https://api.aliyun.com/troubleshoot?q=SignatureDoesNotMatch",
            )
        try:
            stamp = datetime.strptime(params["Timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            return self._answer("InvalidTimeStamp.Format", "Specified time stamp is invalid.", 400)
        if abs(datetime.now(UTC) - stamp) > timedelta(minutes=15):
            return self._answer(
                "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.", 400
            )
        if params["SignatureNonce"] in self._nonces:
            return self._answer(
                "SignatureNonceUsed", "Specified signature nonce was used already.", 400
            )
        self._nonces.add(params["SignatureNonce"])
        if params["Action"] != "SendSms" or params["Version"] != "2017-05-25":
            return self._answer("InvalidAction.NotFound", "Specified api is not found.", 404)
        return self._send(params)

    def _send(self, params: dict[str, str]) -> web.Response:
        phone = params["PhoneNumbers"]
        if self.errors:
            code = self.errors.pop(0)
            return self._answer(code, MESSAGES.get(code, code))
        if params["SignName"] not in self.sign_names:
            return self._answer("isv.SMS_SIGNATURE_ILLEGAL", MESSAGES["isv.SMS_SIGNATURE_ILLEGAL"])
        if params["TemplateCode"] not in self.template_codes:
            return self._answer("isv.SMS_TEMPLATE_ILLEGAL", MESSAGES["isv.SMS_TEMPLATE_ILLEGAL"])
        if not re.fullmatch(r"(?:86)?1[3-9]\d{9}", phone):
            return self._answer("isv.MOBILE_NUMBER_ILLEGAL", MESSAGES["isv.MOBILE_NUMBER_ILLEGAL"])
        try:
            variables = json.loads(params.get("TemplateParam") or "{}")
        except json.JSONDecodeError:
            variables = None
        if not isinstance(variables, dict) or not all(
            isinstance(v, str) for v in variables.values()
        ):
            return self._answer("isv.INVALID_JSON_PARAM", MESSAGES["isv.INVALID_JSON_PARAM"])
        if len(self.codes_for(phone)) >= self.per_number_limit:
            return self._answer(
                "isv.BUSINESS_LIMIT_CONTROL", MESSAGES["isv.BUSINESS_LIMIT_CONTROL"]
            )
        biz_id = f"{next(self._ids):06d}^0"
        self.messages.append(
            Sms(phone, params["SignName"], params["TemplateCode"], dict(params), biz_id)
        )
        return self._answer("OK", "OK", BizId=biz_id)
