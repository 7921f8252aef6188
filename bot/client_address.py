"""The client's address for per-address limits, believing forwarded headers only from trusted
proxies.

Behind a reverse proxy every request comes from the proxy, so per-address limits would lump all
citizens together; but a header a client sends itself proves nothing. So:

- the peer (`request.remote`) is the client unless it is in TRUSTED_PROXIES;
- from a trusted peer, `X-Forwarded-For` is read from the right: each hop a trusted proxy
  appended is skipped, and the first hop that is not a trusted proxy is the client. Hops to its
  left were written by the client and are ignored. Without `X-Forwarded-For`, `X-Real-IP` is
  used; a hop that is not an address stops the walk at the last trusted proxy.

`limit_subject()` is the key every per-address control counts on: an IPv4 address, or the /64
an IPv6 address belongs to (one subscriber gets a whole /64 and could rotate through it).
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

from aiohttp import web

from bot.keys import SETTINGS

UNKNOWN = "unknown"


def client_address(request: web.Request) -> str:
    """The client's address as text (`unknown` when aiohttp has no peer, e.g. a unix socket)."""
    peer = _parse(request.remote or "")
    if peer is None:
        return request.remote or UNKNOWN
    networks = request.app[SETTINGS].trusted_proxy_networks
    if not networks or not _trusted(peer, networks):
        return str(peer)
    forwarded = ",".join(request.headers.getall("X-Forwarded-For", []))
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    if not hops:
        real = _parse(request.headers.get("X-Real-IP", ""))
        return str(real if real is not None else peer)
    last_trusted = peer
    for hop in reversed(hops):
        address = _parse(hop)
        if address is None:
            return str(last_trusted)
        if not _trusted(address, networks):
            return str(address)
        last_trusted = address
    return str(last_trusted)  # every hop is a proxy of ours: the leftmost is the client


def limit_subject(request: web.Request) -> str:
    """The per-address key for limits: `ip:<IPv4>` or `ip:<IPv6 /64>`."""
    address = _parse(client_address(request))
    if isinstance(address, IPv6Address):
        return f"ip:{IPv6Network((address, 64), strict=False)}"
    return f"ip:{address if address is not None else UNKNOWN}"


def _parse(text: str) -> IPv4Address | IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        address = ip_address(text)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(
    address: IPv4Address | IPv6Address, networks: Sequence[IPv4Network | IPv6Network]
) -> bool:
    return any(address in network for network in networks)
