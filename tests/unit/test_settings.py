from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_follow_the_settings_table() -> None:
    settings = Settings.from_env({})
    assert settings.port == 8000
    assert settings.redis_url is None and settings.effective_redis_url == "redis://127.0.0.1:6379/0"
    assert settings.open_mode and len(settings.secret_key) == 32
    assert (settings.max_upload_mb, settings.max_pages, settings.max_active_jobs) == (50, 2000, 100)
    assert settings.result_ttl_s == 3600 and settings.ocr_concurrency >= 1
    assert settings.allow_private_networks is False and settings.webhook_secret is None
    assert (settings.max_page_text_bytes, settings.max_document_text_bytes) == (1024 * 1024, 100 * 1024 * 1024)


def test_api_keys_map_keys_to_tenants_and_need_a_secret() -> None:
    env = {"API_KEYS": "acme:key-acme-1234, globex:key-globex-99", "SECRET_KEY": "s" * 32}
    settings = Settings.from_env(env)
    assert settings.api_keys == {"key-acme-1234": "acme", "key-globex-99": "globex"}
    assert not settings.open_mode
    with pytest.raises(SettingsError, match="SECRET_KEY is required"):
        Settings.from_env({"API_KEYS": "acme:key-acme-1234"})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "http"}, "PORT must be an integer"),
        ({"PORT": "70000"}, "PORT must be between"),
        ({"MAX_UPLOAD_MB": "0"}, "MAX_UPLOAD_MB must be between"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL must start with"),
        ({"API_KEYS": "no-colon"}, "API_KEYS must be tenant:key pairs"),
        ({"API_KEYS": "a:short", "SECRET_KEY": "s" * 32}, "API_KEYS must be tenant:key pairs"),
        ({"API_KEYS": "a:samekey123,b:samekey123", "SECRET_KEY": "s" * 32}, "same key"),
        ({"ALLOW_PRIVATE_NETWORKS": "perhaps"}, "must be true or false"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT must be"),
        ({"SECRET_KEY": "short"}, "at least 16"),
        ({"MAX_PAGE_TEXT_KB": "0"}, "MAX_PAGE_TEXT_KB must be between"),
        ({"MAX_DOCUMENT_TEXT_MB": "lots"}, "MAX_DOCUMENT_TEXT_MB must be an integer"),
    ],
)
def test_bad_values_are_refused_with_the_variable_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_rediss_without_verification_for_self_signed_certificates() -> None:
    settings = Settings.from_env({"REDIS_URL": "rediss://:pw@redis.example:6380/0", "REDIS_SSL_VERIFY": "false"})
    redis_settings = settings.redis_settings()
    assert redis_settings.ssl and redis_settings.ssl_cert_reqs == "none"


@pytest.mark.parametrize("module", [["-m", "service.web"], ["worker.py"]])
def test_a_bad_setting_stops_the_process_with_one_line(module: list[str]) -> None:
    completed = subprocess.run(
        [sys.executable, *module], cwd=ROOT, env={"PATH": "/usr/bin:/bin", "PORT": "nope"},
        capture_output=True, text=True, timeout=60,
    )
    assert completed.returncode == 2
    assert completed.stderr.strip() == "configuration error: PORT must be an integer, got 'nope'"


@pytest.mark.parametrize("module", [["-m", "service.web"], ["worker.py"]])
def test_an_unreachable_redis_stops_the_process_with_one_line(module: list[str]) -> None:
    completed = subprocess.run(
        [sys.executable, *module], cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "REDIS_URL": "redis://:secretpw@127.0.0.1:1/0"},
        capture_output=True, text=True, timeout=60,
    )
    assert completed.returncode == 3
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("startup check failed: Redis at redis://***@127.0.0.1:1/0")
    assert "secretpw" not in completed.stderr


def test_the_web_pool_is_bounded() -> None:
    from service.connections import redis_client

    client = redis_client(Settings.from_env({"REDIS_MAX_CONNECTIONS": "7"}))
    assert client.connection_pool.max_connections == 7
