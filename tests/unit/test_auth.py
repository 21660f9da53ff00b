from __future__ import annotations

import time

import pytest
from starlette.requests import Request

from service.api.auth import mint_token, tenant_from_header, verify_token
from service.errors import Unauthorized
from settings import Settings

SECRET = b"k" * 32


def test_a_token_names_its_tenant_for_its_scope_only() -> None:
    token = mint_token("acme", "job:abc", SECRET, ttl_s=60)
    assert verify_token(token, "job:abc", SECRET) == "acme"
    assert verify_token(token, "job:other", SECRET) is None
    assert verify_token(token, "feed", SECRET) is None
    assert verify_token(token, "job:abc", b"x" * 32) is None


def test_expired_tampered_and_malformed_tokens_are_refused() -> None:
    expired = mint_token("acme", "feed", SECRET, ttl_s=-1)
    assert verify_token(expired, "feed", SECRET) is None
    token = mint_token("acme", "feed", SECRET, ttl_s=60)
    expires, tenant, mac = token.split(".")
    assert verify_token(f"{int(expires) + 1000}.{tenant}.{mac}", "feed", SECRET) is None
    other_tenant = mint_token("globex", "feed", SECRET, ttl_s=60).split(".")[1]
    assert verify_token(f"{expires}.{other_tenant}.{mac}", "feed", SECRET) is None
    for junk in ("", "...", "abc", "123.", "key-acme-1234", f"{int(time.time()) + 60}.@@.@@"):
        assert verify_token(junk, "feed", SECRET) is None


def test_non_ascii_and_overlong_tokens_are_refused_not_crashes() -> None:
    token = mint_token("acme", "feed", SECRET, ttl_s=60)
    expires, tenant, mac = token.split(".")
    for junk in (
        f"{expires}.{tenant}.{mac[:-1]}é",  # hmac.compare_digest raises TypeError on non-ASCII str
        f"{expires}.{tenant}é.{mac}",
        "1.é.é",
        f"².{tenant}.{mac}",  # isdigit() accepts it, int() does not
        f"{'9' * 5000}.{tenant}.{mac}",  # past int()'s 4300-digit limit
        f"٣.{tenant}.{mac}",
    ):
        assert verify_token(junk, "feed", SECRET) is None


def _request(authorization: bytes) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "headers": [(b"authorization", authorization)]})


SETTINGS = Settings(api_keys={"key-acme-1234": "acme", "clé-globex-1234": "globex"}, secret_key=SECRET)


@pytest.mark.parametrize(
    "authorization",
    [b"Bearer \xe9\xff", "Bearer clé-€".encode(), b"Bearer key-acme-1234\xb2", b"Bearer", b"Basic x", b"\xff"],
)
def test_malformed_or_non_ascii_keys_are_401(authorization: bytes) -> None:
    with pytest.raises(Unauthorized):
        tenant_from_header(_request(authorization), SETTINGS)


def test_keys_are_compared_as_the_bytes_the_client_sent() -> None:
    assert tenant_from_header(_request(b"Bearer key-acme-1234"), SETTINGS) == "acme"
    # Starlette hands header bytes over decoded as latin-1; a UTF-8 key still matches.
    assert tenant_from_header(_request("Bearer clé-globex-1234".encode()), SETTINGS) == "globex"
