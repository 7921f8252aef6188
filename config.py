"""One settings object, read from the environment (and an optional, untracked `.env`).

A top-level module because both layers read it: the gateway (`bot`) and the store (`store`,
which the action server also uses). It imports neither."""

from __future__ import annotations

from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent


class Settings(BaseSettings):
    """Every knob of the product. Secrets are `SecretStr` and never have a real default."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: str = Field(
        default=f"sqlite:///{ROOT / 'var' / 'hotline.db'}",
        description="SQLAlchemy URL; sqlite:/// (default) or postgresql://",
    )
    redis_url: str | None = Field(default=None, description="Redis URL; unset = in-memory bus")
    redis_prefix: str = Field(
        default="h12345:",
        description="prefix of every Redis key (two deployments, or test runs, on one Redis)",
    )
    rasa_url: str = "http://127.0.0.1:5005"
    action_server_url: str = "http://127.0.0.1:5055"
    rasa_timeout: float = Field(default=4.0, description="seconds before the apology path")
    answer_within_seconds: float = Field(
        default=60.0,
        gt=0,
        description="a stored citizen message still unanswered this long after it was claimed "
        "is claimed again and answered by the sweeper (or the platform's retry); must exceed "
        "rasa_timeout plus the 30 s a turn may wait for its conversation",
    )
    answer_max_tries: int = Field(
        default=3,
        ge=1,
        description="claims of an unanswered message before the citizen is told sorry and "
        "handed to an agent",
    )
    rasa_token: SecretStr = Field(
        default=SecretStr(""), description="token of Rasa's HTTP API (rasa run --auth-token)"
    )

    host: str = "127.0.0.1"
    port: int = 8000
    public_base_url: str = "http://127.0.0.1:8000"

    data_key: SecretStr = Field(
        default=SecretStr(""),
        description="base64 of 32 random bytes; encrypts personal data at rest",
    )
    session_secret: SecretStr = Field(
        default=SecretStr(""), description="signs console session cookies and CSRF tokens"
    )
    rest_api_key: SecretStr = Field(
        default=SecretStr(""),
        description="X-API-Key for the REST channel; empty = open only to loopback callers of a "
        "gateway bound to loopback with no TRUSTED_PROXIES, closed otherwise",
    )
    # Reverse proxies (addresses or CIDRs, comma-separated) whose X-Forwarded-For / X-Real-IP
    # headers are believed when they are the direct peer. Empty = no header is believed and the
    # peer address is the client's (bot/client_address.py).
    trusted_proxies: str = Field(
        default="", description="comma-separated addresses/CIDRs of trusted reverse proxies"
    )

    wechat_token: SecretStr = SecretStr("")
    wechat_app_id: str = ""
    wechat_app_secret: SecretStr = SecretStr("")
    wechat_encoding_aes_key: SecretStr = SecretStr("")
    wechat_api_base: str = "https://api.weixin.qq.com"
    wechat_reply_budget: float = 4.5
    wechat_timestamp_window: float = Field(
        default=300.0,
        gt=0,
        description="seconds a request's `timestamp` may differ from our clock (replay guard)",
    )
    wechat_template_status_id: str = Field(
        default="",
        description="template id for status pushes outside the 48 h customer-service window; "
        "empty = such pushes are recorded as not delivered",
    )
    wechat_template_status_fields: str = Field(
        default="keyword1,keyword2,keyword3",
        description="the template's field names for tracking number, status and time of change",
    )

    telegram_token: SecretStr = SecretStr("")
    telegram_secret_token: SecretStr = SecretStr("")
    telegram_api_base: str = "https://api.telegram.org/bot"
    telegram_webhook_url: str = Field(
        default="", description="public HTTPS URL of /webhooks/telegram; set = register at start-up"
    )

    # SMS one-time codes that prove a phone number ("验证手机"); all five set = on, else off.
    sms_provider: str = Field(default="aliyun", description="SMS provider; only `aliyun` so far")
    sms_endpoint: str = Field(
        default="https://dysmsapi.aliyuncs.com", description="Aliyun SMS (dysmsapi) endpoint"
    )
    sms_region: str = "cn-hangzhou"
    sms_access_key_id: str = Field(default="", description="AccessKey id of a RAM user")
    sms_access_key_secret: SecretStr = Field(
        default=SecretStr(""), description="its AccessKey secret (may only call SendSms)"
    )
    sms_sign_name: str = Field(default="", description="approved SMS signature (签名), e.g. 12345")
    sms_template_code: str = Field(
        default="", description="approved verification-code template with a ${code} variable"
    )

    web_allowed_origins: str = Field(
        default="",
        description="extra origins allowed to open the widget socket, comma-separated; "
        "empty = same origin and loopback only",
    )

    max_body_bytes: int = 64 * 1024
    service_hours: str = Field(
        default="mon-fri 08:30-17:30; sat-sun 09:00-17:00",
        description="when agents are on duty (local time)",
    )
    timezone: str = "Asia/Shanghai"
    console_auto_assign: bool = Field(
        default=True, description="give pending hand-offs to the least-loaded online agent"
    )
    notify_retry_hours: float = Field(
        default=24.0,
        gt=0,
        description="a status notice a channel keeps failing for is retried (with backoff from "
        "the last attempt) this long after it was written, then shown on the supervisor board",
    )
    handoff_timeout_minutes: float = Field(
        default=30, description="a pending hand-off no agent took expires after this"
    )
    # Open console sockets re-check their session this often and close when it was revoked,
    # expired or its agent deactivated (a logout or an admin's action also closes them at once).
    console_session_check_seconds: float = Field(
        default=30, gt=0, description="how often a console socket re-checks its session"
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_parse(cls, value: str) -> str:
        for item in filter(None, (part.strip() for part in value.split(","))):
            try:
                ip_network(item, strict=False)
            except ValueError as exc:
                raise ValueError(f"TRUSTED_PROXIES: {item!r} is not an address or CIDR") from exc
        return value

    @property
    def trusted_proxy_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        """TRUSTED_PROXIES parsed; empty when no proxy is trusted."""
        return _networks(self.trusted_proxies)

    @property
    def uses_sqlite(self) -> bool:
        """True when the store is the embedded SQLite file."""
        return self.database_url.startswith("sqlite")


@lru_cache(maxsize=8)
def _networks(text: str) -> tuple[IPv4Network | IPv6Network, ...]:
    return tuple(ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip())


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
