"""The house rules of the layout (README, "How it is built"), read from the code's own imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICE = ROOT / "service"
MAX_MODULE_LINES = 400


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def modules_of(package: str) -> list[Path]:
    return sorted((SERVICE / package).rglob("*.py"))


# (package, what none of its modules may import, why)
RULES = [
    ("api", ("service.worker",), "the web and the worker share only the domain"),
    ("worker", ("service.api",), "the worker knows no HTTP handler"),
    ("jobs", ("service.api", "service.worker", "starlette", "sse_starlette"), "the domain is neither process"),
    ("ops", ("service.api", "service.worker"), "operations serve both processes"),
    ("ocr", ("service.api", "service.worker", "service.jobs", "service.ops", "redis", "arq", "asyncio"), "pure"),
]


@pytest.mark.parametrize(("package", "forbidden", "why"), RULES, ids=[rule[0] for rule in RULES])
def test_a_package_imports_only_what_its_room_may(package: str, forbidden: tuple[str, ...], why: str) -> None:
    broken = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in modules_of(package)
        for name in sorted(imported_modules(path))
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]
    assert broken == [], why


def test_the_client_imports_nothing_of_the_server() -> None:
    broken = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in modules_of("client")
        for name in sorted(imported_modules(path))
        if (name == "settings" or name.startswith("service.")) and not name.startswith("service.client")
    ]
    assert broken == []


def test_no_module_is_over_the_size_a_reader_takes_in() -> None:
    sources = [*SERVICE.rglob("*.py"), *(SERVICE / "static").glob("*.js"), ROOT / "settings.py", ROOT / "worker.py"]
    too_long = {
        str(p.relative_to(ROOT)): n for p in sources if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert too_long == {}


# What only the page processes (and the web's PDF builds) may load: some 70 MB in every process that
# imports them (BENCHMARKS.md section 13).
HEAVY_LIBRARIES = ("fitz", "pymupdf", "cv2", "numpy")


def test_the_worker_and_the_web_load_no_page_library() -> None:
    """Importing the worker's jobs and the web's app (everything either process imports before it serves)
    loads neither PyMuPDF, nor OpenCV, nor numpy: those are the page processes' own."""
    probe = (
        "import sys, worker, service.web, service.api.app; "
        f"print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY_LIBRARIES!r})))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "REDIS_URL": "redis://127.0.0.1:1/0"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert completed.stdout.split() == []
