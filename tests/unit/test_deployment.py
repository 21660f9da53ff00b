"""The deployment files agree with each other (there is no Docker engine here: compose is checked by parsing)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import yaml

from settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def procfile() -> dict[str, str]:
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip():
            name, _, command = line.partition(":")
            entries[name.strip()] = command.strip()
    return entries


def test_procfile_has_exactly_web_and_worker() -> None:
    assert procfile() == {"web": "python -m service.web", "worker": "python worker.py"}


def test_compose_commands_match_the_procfile() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"redis", "web", "worker"}
    for name in ("web", "worker"):
        assert services[name]["command"] == shlex.split(procfile()[name])
        assert services[name]["environment"]["REDIS_URL"] == "redis://redis:6379/0"
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["worker"]["deploy"]["replicas"] >= 2
    assert "--appendonly" in services["redis"]["command"] and services["redis"]["volumes"]
    assert all("healthcheck" in services[name] for name in ("redis", "worker"))
    # Several web processes on the one port, each with its own hub and pool, sized deliberately.
    web_env = services["web"]["environment"]
    assert (
        Settings.from_env({"WEB_CONCURRENCY": web_env["WEB_CONCURRENCY"].split(":-")[1].rstrip("}")}).web_concurrency
        > 1
    )
    assert "REDIS_MAX_CONNECTIONS" in web_env and "WEB_CONCURRENCY" not in services["worker"]["environment"]


def test_dockerfile_runs_as_a_non_root_user_with_tesseract_and_a_healthcheck() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "tesseract-ocr-osd" in dockerfile and "HEALTHCHECK" in dockerfile
    assert "\nUSER app\n" in dockerfile and "FROM python:3.11-slim" in dockerfile
    assert "WEB_CONCURRENCY=1" in dockerfile


def test_heroku_files() -> None:
    app = json.loads((ROOT / "app.json").read_text())
    assert set(app["formation"]) == {"web", "worker"}
    assert any("redis" in addon for addon in app["addons"])
    assert app["buildpacks"][0]["url"].endswith("apt")
    assert app["env"]["REDIS_SSL_VERIFY"]["value"] == "false"
    # Heroku Redis mini allows 20 connections: the web dyno's processes leave room for a worker.
    web = Settings.from_env({k: app["env"][k]["value"] for k in ("WEB_CONCURRENCY", "REDIS_MAX_CONNECTIONS")})
    assert web.web_concurrency * (web.redis_max_connections + 1) <= 12
    assert {"tesseract-ocr", "tesseract-ocr-eng", "tesseract-ocr-osd"} <= set((ROOT / "Aptfile").read_text().split())
    assert (ROOT / ".python-version").read_text().strip().startswith("3.")
