"""Outbound HTTP that cannot be turned against the service's own network (SSRF).

A URL's host is resolved once, every address is checked (private, loopback, link-local such as
169.254.169.254, unique-local, site-local, unspecified, multicast and reserved ranges are refused, IPv4 and IPv6;
IPv6 forms that carry an IPv4 address (mapped, 6to4, Teredo, NAT64) are refused when that address is not public),
and the connection goes to the address that was checked, with the original host name kept for the
Host header and TLS SNI. Resolving again at connect time would let a DNS record that changes between
the two look-ups (rebinding) slip through. Redirects are followed by hand, each one checked again.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from service.errors import BadRequest, RefusedAddress
from service.params import parse_url

MAX_REDIRECTS = 5
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# NAT64's well-known prefix (RFC 6052) carries the IPv4 address in its last 32 bits.
NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")


def is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return is_public(address.ipv4_mapped)
        # A NAT64 gateway forwards to the IPv4 address inside: judge it by that (an IPv6-only network
        # with DNS64 reaches every public IPv4 host this way). The local-use 64:ff9b:1::/48 is not in it:
        # it falls in ::/8 and is refused as reserved below.
        if address in NAT64_PREFIX:
            return is_public(ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF))
        # 6to4 (2002::/16) and Teredo (2001::/32) relays deliver to the IPv4 addresses inside them:
        # 2002:7f00:1:: is 127.0.0.1 and 2002:a9fe:a9fe:: the metadata service.
        embedded = [address.sixtofour] if address.sixtofour is not None else list(address.teredo or ())
        # Site-local fec0::/10 is deprecated but still routed inside some networks; Python counts it global.
        if address.is_site_local or not all(is_public(ipv4) for ipv4 in embedded):
            return False
    return address.is_global and not (address.is_multicast or address.is_reserved or address.is_link_local)


def check_address(address: IPAddress, *, allow_private: bool) -> None:
    if not allow_private and not is_public(address):
        raise RefusedAddress(f"Refusing to connect to {address}: it is a private, loopback or internal address.")


@dataclass(frozen=True)
class Target:
    url: str  # the URL as given
    host: str
    address: IPAddress  # where the connection goes

    @property
    def pinned_url(self) -> str:
        parts = urlsplit(self.url)
        host = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        netloc = host if parts.port is None else f"{host}:{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))


async def resolve(url: str, *, allow_private: bool) -> Target:
    """Resolve the URL's host once and check every address it has; the first one is used."""
    url = parse_url(url, "The URL")  # a BadRequest, not a ValueError, for a bad port or IPv6 literal
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRequest("Only http:// and https:// URLs with a host name are accepted.")
    if parts.username or parts.password:
        raise BadRequest("URLs with credentials in them are refused.")
    host = parts.hostname
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, parts.port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM
            )
        except socket.gaierror:
            raise BadRequest(f"The host {host!r} could not be resolved.") from None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not addresses:
        raise BadRequest(f"The host {host!r} has no address.")
    for address in addresses:
        check_address(address, allow_private=allow_private)
    return Target(url=url, host=host, address=addresses[0])


def _request(client: httpx.AsyncClient, method: str, target: Target, **kwargs: object) -> httpx.Request:
    parts = urlsplit(target.url)
    host_header = target.host if parts.port is None else f"{target.host}:{parts.port}"
    headers = dict(kwargs.pop("headers", None) or {})  # type: ignore[call-overload]
    headers["Host"] = host_header
    return client.build_request(
        method,
        target.pinned_url,
        headers=headers,
        extensions={"sni_hostname": target.host},
        **kwargs,  # type: ignore[arg-type]
    )


@asynccontextmanager
async def open_stream(client: httpx.AsyncClient, url: str, *, allow_private: bool) -> AsyncIterator[httpx.Response]:
    """GET `url`, following redirects by hand (each re-resolved and re-checked), as a streamed response."""
    for _ in range(MAX_REDIRECTS + 1):
        target = await resolve(url, allow_private=allow_private)
        response = await client.send(_request(client, "GET", target), stream=True)
        if response.is_redirect and "location" in response.headers:
            await response.aclose()
            url = urljoin(url, response.headers["location"])
            continue
        try:
            yield response
        finally:
            await response.aclose()
        return
    raise BadRequest(f"More than {MAX_REDIRECTS} redirects.")


# What is read of the answer to a POST: its status is what counts, and a receiver must not be able
# to make the worker hold (or read for ever) a body of its choosing.
MAX_POST_ANSWER_BYTES = 64 * 1024


async def post(
    client: httpx.AsyncClient, url: str, *, content: bytes, headers: dict[str, str], allow_private: bool
) -> httpx.Response:
    """POST to a checked address; redirects are not followed (a webhook receiver answers directly).
    The answer's status and headers count; of its body at most MAX_POST_ANSWER_BYTES are read (a
    receiver that answers briefly keeps its connection reusable), the rest never, and the response is
    closed before it is returned."""
    target = await resolve(url, allow_private=allow_private)
    response = await client.send(_request(client, "POST", target, content=content, headers=headers), stream=True)
    try:
        read = 0
        async for chunk in response.aiter_raw():
            read += len(chunk)
            if read >= MAX_POST_ANSWER_BYTES:
                break
    finally:
        await response.aclose()
    return response
