"""Every end-to-end test fails when a service it ran logged a traceback or answered 5xx.

A traceback or a 500 is a bug whatever the test asserts; a 503 is the contract's answer while Redis is
really unreachable, so only tests that take Redis away mark themselves `expects_unavailable` to allow
it (`/readyz` answers 503 by design while no worker is alive, and is not counted). A test that makes a
library log a traceback on purpose names it: `logs_traceback("text in the traceback")`. Each test is held to what its services logged while it ran,
the session's shared service included.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SERVICES

TRACEBACK = "Traceback (most recent call last)"
# The access line of service/api/app.py's middleware: "<METHOD> <path> <status> <ms>ms"
SERVER_ERROR = re.compile(r"service\.access: (\S+ \S+) (5\d\d) [\d.]+ms")


def _offsets() -> dict[Path, int]:
    return {log: log.stat().st_size for service in SERVICES for log in service.logdir.glob("*.log")}


def _logged_since(offsets: dict[Path, int]) -> dict[Path, str]:
    found: dict[Path, str] = {}
    for service in SERVICES:
        for log in service.logdir.glob("*.log"):
            with log.open("rb") as handle:
                handle.seek(offsets.get(log, 0))
                found[log] = handle.read().decode(errors="replace")
    return found


# A log record starts with its time (the plain format of service/logs.py); the lines up to the next one
# are its own, a traceback and its chained causes included.
RECORD_START = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", re.M)


def tracebacks(text: str) -> list[str]:
    """Each log record that carries a traceback, whole (its first line says who logged it)."""
    starts = [m.start() for m in RECORD_START.finditer(text)]
    bounds = zip([0, *starts], [*starts, len(text)], strict=True)
    return [record[:4000] for start, end in bounds if TRACEBACK in (record := text[start:end])]


def server_faults(text: str, *, allow_unavailable: bool, expected_tracebacks: tuple[str, ...]) -> list[str]:
    faults = [tb for tb in tracebacks(text) if not any(marker in tb for marker in expected_tracebacks)]
    for request, status in SERVER_ERROR.findall(text):
        if request.endswith(" /readyz") or (status == "503" and allow_unavailable):
            continue
        faults.append(f"{request} answered {status}")
    return faults


@pytest.fixture(autouse=True)
def no_server_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    offsets = _offsets()
    yield
    allow_unavailable = request.node.get_closest_marker("expects_unavailable") is not None
    expected = tuple(str(m.args[0]) for m in request.node.iter_markers("logs_traceback"))
    faults = {
        str(log): found
        for log, text in _logged_since(offsets).items()
        if (found := server_faults(text, allow_unavailable=allow_unavailable, expected_tracebacks=expected))
    }
    assert not faults, f"the services logged faults during this test: {faults}"
