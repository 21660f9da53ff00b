"""Sampling profiles of the service's processes with py-spy, summarised for BENCHMARKS.md.

py-spy cannot attach to a running process on this machine's Python build, so a profiled process is started
under `py-spy record -- python ...` (with `--subprocesses`, the worker's page processes too), and stopped by
sending SIGTERM to the profiled process alone: it shuts down as usual, py-spy writes its samples and exits.
Only samples of busy threads are recorded (py-spy skips idle ones), so sample counts are CPU time.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from benchmarks.processes import stop

RATE_HZ = 200
_COUNT = re.compile(r"^(.*) (\d+)$")
_PROCESS = re.compile(r'^process \d+:"(.*)"$', re.DOTALL)
_LINE = re.compile(r":\d+\)$")


def py_spy() -> str | None:
    candidate = Path(sys.executable).parent / "py-spy"
    return str(candidate) if candidate.exists() else shutil.which("py-spy")


def prefix(out: Path, *, subprocesses: bool = False) -> list[str]:
    binary = py_spy()
    if binary is None:
        raise RuntimeError("py-spy is not installed (.venv/bin/pip install py-spy)")
    argv = [binary, "record", "--rate", str(RATE_HZ), "--format", "raw", "--output", str(out), "--nonblocking"]
    if subprocesses:
        argv.append("--subprocesses")
    return [*argv, "--"]


def stop_profiled(process: subprocess.Popen[bytes] | None, *, timeout_s: float = 30) -> None:
    """SIGTERM the profiled program (py-spy's child), let py-spy write its file, then clean up the group."""
    if process is None:
        return
    import psutil

    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(process.pid).children():
            child.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout_s)
    stop(process)


def _short(frame: str) -> str:
    """`func (path:line)` -> `func (short/path)`: lines dropped so a function's samples add up."""
    frame = _LINE.sub(")", frame)
    if " (" not in frame:
        return frame
    func, path = frame.rsplit(" (", 1)
    path = path.rstrip(")")
    for marker in ("site-packages/", "/work/main/", "python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{func} ({path})"


def read_stacks(path: Path) -> list[tuple[str, list[str], int]]:
    """(process command line, frames root first, samples) for every stack in a raw py-spy file."""
    stacks: list[tuple[str, list[str], int]] = []
    pending = ""
    for line in path.read_text(errors="replace").splitlines():
        pending = f"{pending}\n{line}" if pending else line
        match = _COUNT.match(pending.rsplit("\n", 1)[-1]) if pending else None
        if not match:
            continue
        text, count = pending.rsplit(" ", 1)
        pending = ""
        frames = text.split(";")
        process = ""
        # With --subprocesses each stack starts with its process and the process's ancestors: keep the last.
        while frames and frames[0].startswith("process "):
            found = _PROCESS.match(frames[0])
            process = found.group(1) if found else frames[0]
            frames = frames[1:]
        # Thread frames ("thread (0x...)") may lead when py-spy is asked for them; drop them.
        frames = [f for f in frames if not f.startswith("thread (")]
        stacks.append((process, [_short(f) for f in frames], int(count)))
    return stacks


# Leaf frames where a thread waits rather than works (py-spy's idle detection misses some of them).
_IDLE_LEAVES = ("EpollSelector.select", "Runner.run", "_worker (concurrent/futures/thread.py)",
                "Condition.wait", "Event.wait", "Thread._wait_for_tstate_lock")


def _counts(frames: list[str]) -> bool:
    """Whether a stack is work worth attributing: not start-up imports, not an idle wait."""
    if any("<frozen importlib" in f for f in frames):
        return False
    return bool(frames) and not frames[-1].startswith(_IDLE_LEAVES)


def role_of(process: str, default: str) -> str:
    if "service.worker.page_pool" in process:
        return "page processes"
    if "worker.py" in process or "lag_worker" in process:
        return "worker"
    if "service.web" in process:
        return "web"
    return process[:40] or default


def summarize(
    path: Path, *, role: str = "process", top: int = 8, interesting: tuple[str, ...] = ("service/",)
) -> list[str]:
    """Markdown lines: per process role, its samples, the functions with the most inclusive time among
    `interesting` files and libraries, and the leaf functions (where the CPU actually is)."""
    if not path.exists():
        return [f"(no profile written at {path})"]
    by_role: dict[str, list[tuple[list[str], int]]] = {}
    for process, frames, count in read_stacks(path):
        if _counts(frames):
            by_role.setdefault(role_of(process, role), []).append((frames, count))
    lines: list[str] = []
    for name, stacks in sorted(by_role.items(), key=lambda item: -sum(c for _, c in item[1])):
        total = sum(c for _, c in stacks)
        if total < 20:
            continue
        inclusive: Counter[str] = Counter()
        leaves: Counter[str] = Counter()
        for frames, count in stacks:
            for frame in set(frames):
                entry_point = frame.startswith(("<module>", "main ", "child_main"))
                if any(key in frame for key in interesting) and not entry_point:
                    inclusive[frame] += count
            if frames:
                leaves[frames[-1]] += count
        lines.append(f"- **{name}**: {total} busy samples at {RATE_HZ} Hz ({total / RATE_HZ:.1f} CPU s; start-up "
                     "imports and idle waits left out).")
        lines.append(
            "  - inclusive, service code: "
            + "; ".join(f"`{name}` {count / total:.0%}" for name, count in inclusive.most_common(top))
        )
        lines.append(
            "  - leaf (self) time: "
            + "; ".join(f"`{name}` {count / total:.0%}" for name, count in leaves.most_common(top))
        )
    return lines
