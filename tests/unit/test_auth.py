from __future__ import annotations

import time

from service.api.auth import mint_token, verify_token

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
