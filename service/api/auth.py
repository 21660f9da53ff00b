"""Who is calling: API keys to tenants, and the signed tokens that let EventSource in without headers.

A token reads `<expiry unix s>.<tenant, base64url>.<HMAC-SHA256 of scope|tenant|expiry, base64url>`; the scope is
`job:<id>` or `feed`. Tokens are only ever minted by the server and handed out in `links`; a raw API
key in a URL is refused, so keys never end up in proxy or browser logs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from starlette.requests import Request

from service.errors import BadRequest, Unauthorized
from service.params import ascii_int, header_text
from settings import OPEN_MODE_TENANT, Settings

# expiry (10 digits) + a 64-character tenant in base64 (86) + a SHA-256 MAC in base64 (43), with room.
MAX_TOKEN_CHARS = 512


def tenant_from_header(request: Request, settings: Settings) -> str:
    """The tenant a request's `Authorization: Bearer <key>` belongs to; the `public` tenant in open mode."""
    if settings.open_mode:
        return OPEN_MODE_TENANT
    try:
        authorization = header_text(request.headers, "authorization") or ""
    except BadRequest:  # bytes that are not UTF-8 text are no key this server gave out
        raise Unauthorized("That API key is not valid.") from None
    scheme, _, key = authorization.partition(" ")
    if scheme.lower() != "bearer" or not key:
        raise Unauthorized("Send an API key as 'Authorization: Bearer <key>'.")
    tenant = _tenant_for_key(key.strip(), settings)
    if tenant is None:
        raise Unauthorized("That API key is not valid.")
    return tenant


def tenant_for_stream(request: Request, settings: Settings, scope: str) -> str:
    """The tenant of an SSE request: a bearer key, or a `?token=` minted for exactly this scope."""
    token = request.query_params.get("token")
    if token is None or request.headers.get("authorization"):
        return tenant_from_header(request, settings)
    if settings.open_mode:
        return OPEN_MODE_TENANT
    tenant = verify_token(token, scope, settings.secret_key)
    if tenant is None:
        raise Unauthorized("That token is not valid for this stream, or it has expired.")
    return tenant


def _tenant_for_key(key: str, settings: Settings) -> str | None:
    # Compare against every key, in constant time each, so the time taken says nothing about which key
    # (or how much of one) matched.
    found = None
    for known, tenant in settings.api_keys.items():
        if hmac.compare_digest(known.encode(), key.encode()):
            found = tenant
    return found


def mint_token(tenant: str, scope: str, secret: bytes, ttl_s: int) -> str:
    expires_s = int(time.time()) + ttl_s
    return f"{expires_s}.{_signature(tenant, scope, expires_s, secret)}"


def verify_token(token: str, scope: str, secret: bytes) -> str | None:
    """The tenant the token was minted for, or None when it is malformed, expired, tampered or for another scope."""
    # Minted tokens are short ASCII; hmac.compare_digest raises TypeError on non-ASCII str.
    if len(token) > MAX_TOKEN_CHARS or not token.isascii():
        return None
    expires_raw, _, rest = token.partition(".")
    tenant_b64, _, signature = rest.partition(".")
    expires_s = ascii_int(expires_raw, 12)
    if expires_s is None or not tenant_b64 or not signature:
        return None
    if expires_s < time.time():
        return None
    try:
        tenant = base64.urlsafe_b64decode(tenant_b64 + "=" * (-len(tenant_b64) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    expected = _signature(tenant, scope, expires_s, secret)
    return tenant if hmac.compare_digest(f"{tenant_b64}.{signature}", expected) else None


def _signature(tenant: str, scope: str, expires_s: int, secret: bytes) -> str:
    mac = hmac.new(secret, f"{scope}|{tenant}|{expires_s}".encode(), hashlib.sha256).digest()
    tenant_b64 = base64.urlsafe_b64encode(tenant.encode()).rstrip(b"=").decode()
    return f"{tenant_b64}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
