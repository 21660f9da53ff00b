"""Figures, their targets, and BENCHMARKS.md.

A benchmark returns a `Section`: its figures (each with its target or baseline and the ratio to it),
and a few lines of notes. The runner keeps every section of the last full run in
`benchmarks/.results/latest.json`, so `--only NAME` refreshes one section and leaves the others as they
were measured (each section carries its own date).
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass
class Figure:
    label: str
    value: float
    unit: str
    # What the figure is held against: a bound ("<= 1.15", "< 10", ">= 200") or a baseline figure.
    target: str = ""
    bound: float | None = None
    # "max": lower is better and `bound` is a ceiling; "min": higher is better and `bound` is a floor.
    kind: str = "max"
    baseline: float | None = None
    baseline_label: str = ""
    note: str = ""

    @property
    def ratio(self) -> float | None:
        reference = self.bound if self.bound is not None else self.baseline
        if reference in (None, 0) or math.isnan(self.value):
            return None
        return self.value / reference

    @property
    def passed(self) -> bool | None:
        if self.bound is None or math.isnan(self.value):
            return None
        return self.value <= self.bound if self.kind == "max" else self.value >= self.bound


@dataclass
class Section:
    key: str
    title: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    date: str = ""
    seconds: float = 0.0
    quick: bool = False
    error: str | None = None

    def add(self, *args: Any, **kwargs: Any) -> Figure:
        figure = Figure(*args, **kwargs)
        self.figures.append(figure)
        return figure

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Section:
        figures = [Figure(**f) for f in data.pop("figures", [])]
        return cls(figures=figures, **data)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    tesseract = _first_line(["tesseract", "--version"])
    redis_version = _first_line(["redis-server", "--version"])
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return {
        "cores": str(os.cpu_count()),
        "cpu": cpu,
        "memory": memory,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "tesseract": tesseract,
        "redis": redis_version,
        "load average at start": load,
    }


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        return (out.stdout or out.stderr).splitlines()[0].strip()
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None or math.isnan(value):
        return "n/a"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    elif abs(value) >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3f}"
    return f"{text} {unit}".strip()


def _verdict(figure: Figure) -> str:
    passed = figure.passed
    if passed is None:
        return ""
    return "meets target" if passed else "**misses target**"


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def render_markdown(sections: list[Section], *, machine_info: dict[str, str], command: str,
                    analysis: list[str], run_date: str) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"Written by `{command}`, which runs the whole suite in about ten minutes. `--only NAME` (repeatable, or",
        "comma-separated: enqueue, throughput, text-layer, event-latency, split, sse-fanout, loop-lag, celery,",
        "degraded, profile, soak) refreshes some sections and keeps the others as last measured, each with its own",
        "date; the soak (section 10, many minutes) runs only when named: `--only soak`. `--quick` is a smoke",
        "run with smaller inputs that writes `benchmarks/.results/BENCHMARKS.quick.md` instead; `--report-only`",
        "rewrites this file from the stored figures. The suite generates its documents and starts what it needs",
        "itself: its own redis-server on a free port, web and worker processes, the Celery baseline. Raw figures",
        "and process logs: `benchmarks/.results/`.",
        "",
        f"Last run: {run_date}.",
        "",
        "Setup: redis-server and tesseract (eng, osd) on the PATH, the service installed in `.venv`, and for the",
        "Celery baseline and the profiles",
        "`.venv/bin/pip install \"celery[redis]>=5.4,<5.5\" \"kombu>=5.3.4,<5.5\" \"redis>=5,<6\" psutil py-spy`.",
        "Unpinned, `celery[redis]` brings kombu 5.7, which needs redis-py 6.1 or later and so upgrades redis-py past",
        "arq's cap (<6), breaking the service in the same virtualenv.",
        "",
        "## Machine",
        "",
        "| | |",
        "| --- | --- |",
    ]
    lines += [f"| {k} | {v} |" for k, v in machine_info.items()]
    lines += [
        "",
        "The machine is shared with other work and noisy: OCR figures are medians of repeated, interleaved runs,",
        "and ratios (service vs. plain Tesseract, service vs. Celery) are taken within the same run.",
        "",
        "## Summary",
        "",
        "| # | figure | measured | target or baseline | ratio | verdict |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for section in sections:
        if section.error:
            lines.append(f"| {section.key} | {section.title} | failed: {section.error} | | | **not measured** |")
            continue
        for figure in section.figures:
            reference = figure.target
            if figure.baseline is not None:
                reference = f"{figure.baseline_label or 'baseline'}: {_fmt(figure.baseline, figure.unit)}"
                if figure.target:
                    reference += f" (target {figure.target})"
            ratio = figure.ratio
            # A figure that is itself a ratio is compared with its bound in the verdict column only.
            ratio_text = f"{ratio:.2f}x" if ratio is not None and figure.unit != "x" else ""
            lines.append(
                f"| {section.key} | {figure.label} | {_fmt(figure.value, figure.unit)} | {reference} | {ratio_text} "
                f"| {_verdict(figure)} |"
            )
    lines.append("")
    short = [
        (section, figure)
        for section in sections
        for figure in section.figures
        if figure.passed is False
    ]
    lines += ["## What falls short", ""]
    if short:
        for section, figure in short:
            lines.append(
                f"- **{section.title}: {figure.label}** is {_fmt(figure.value, figure.unit)}, target {figure.target}."
            )
    else:
        lines.append("- Nothing measured in this run misses its target.")
    failed = [s for s in sections if s.error]
    for section in failed:
        lines.append(f"- **{section.title}** could not be measured: {section.error}")
    lines.append("")
    if analysis:
        lines += ["## Where the time goes", "", *analysis, ""]
    lines += ["## Details", ""]
    for section in sections:
        mode = " (quick mode)" if section.quick else ""
        measured = f"Measured {section.date}{mode}, {section.seconds:.0f} s."
        lines += [f"### {section.key}. {section.title}", "", measured, ""]
        if section.error:
            lines += [f"Failed: {section.error}", ""]
        for figure in section.figures:
            if figure.note:
                lines.append(f"- {figure.label}: {figure.note}")
        lines += [note if note.startswith(("- ", "  ")) else f"- {note}" for note in section.notes]
        lines.append("")
    return "\n".join(lines)


def save_json(path: Path, sections: list[Section], extra: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"sections": [s.to_json() for s in sections], **extra}, indent=2))


def load_json(path: Path) -> tuple[list[Section], dict[str, Any]]:
    if not path.exists():
        return [], {}
    data = json.loads(path.read_text())
    sections = [Section.from_json(s) for s in data.pop("sections", [])]
    return sections, data
