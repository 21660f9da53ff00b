"""13. Worker memory on huge pages: the worker tree's peak RSS, beside the service as it was (main).

One worker with its default OCR_CONCURRENCY (one page process per core) OCRs, one job at a time:

- an 8,400 x 8,400 pt PDF page holding one colour JPEG scan of 8,400 x 8,400 pixels (48 pt text), with
  `force_ocr`: drawn by MuPDF, it is 212 MB of RGB before it is scaled down to `MAX_PAGE_PIXELS` (the
  service decodes such a scan to gray itself, service/ocr/render.py);
- a 40-megapixel PNG scan (7,600 x 5,200 pixels, 11 pt text at 450 dpi, 1.5 degrees askew);
- the same page photographed: a colour JPEG, its light falling off to 45 % across it, which the check
  sends to the cleaning (background division, Sauvola).

While each runs, the resident memory (RSS) of the worker, its page processes and their Tesseract runs is
summed every 10 ms; the peak of that sum is the figure (a process forked for Tesseract is counted once it
has become Tesseract, not while it still shares its parent's pages). Each page's text is compared with
what was typeset (CER). The same runs are made, in the same run of this benchmark, on the service as it
is at the git ref `MEMORY_BASELINE` (default `main`), exported to a temporary directory with
`git archive` and run with this virtualenv; when that ref's service is the same as this checkout's, the
baseline is skipped.
"""

# PyMuPDF ships only partial annotations: calls into it are untyped.
# mypy: disable-error-code="no-untyped-call"
from __future__ import annotations

import asyncio
import contextlib
import io
import os
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pymupdf
from PIL import Image

from benchmarks.common import Context, http_client, run_job
from benchmarks.documents import lines_that_fit, scan_image, sentence_lines
from benchmarks.processes import ROOT, rss_kb, run_service
from benchmarks.report import Section

KEY = "13"
TITLE = "Worker memory on huge pages"
BOUND_MB = 600
SAMPLE_EVERY_S = 0.01
BIG_PAGE_PT = (1216.0, 832.0)  # 7,600 x 5,200 pixels at 450 dpi: 39.5 megapixels
BIG_DPI = 450
HUGE_PAGE_PT = (8400.0, 8400.0)
# What the service as it was is compared with; the service's own files decide whether it differs.
_SERVICE_FILES = ("service", "settings.py", "worker.py")


@dataclass(frozen=True)
class Page:
    label: str
    document: bytes
    media_type: str
    truth: str


def _pages(quick: bool) -> list[Page]:
    big_lines = lines_that_fit(BIG_PAGE_PT, 11.0, sentence_lines(40, 200, words_per_line=16))
    if quick:
        big_lines = big_lines[:8]
    scan = scan_image(big_lines, dpi=BIG_DPI, page_pt=BIG_PAGE_PT)
    askew = scan.rotate(1.5, resample=Image.Resampling.BICUBIC, fillcolor=255)
    photo = _photographed(scan)
    huge_lines = lines_that_fit(HUGE_PAGE_PT, 48.0, sentence_lines(8400, 400, words_per_line=24))
    if quick:
        huge_lines = huge_lines[:10]
    huge = scan_image(huge_lines, dpi=72, page_pt=HUGE_PAGE_PT, fontsize=48.0).convert("RGB")
    return [
        Page("8,400-pt PDF page, colour JPEG scan 8,400 x 8,400 px (force_ocr)", _pdf_of(huge, HUGE_PAGE_PT),
             "application/pdf", "\n".join(huge_lines)),
        Page(f"40 MP PNG scan, {scan.width:,} x {scan.height:,} px, 1.5 deg askew", _encoded(askew, "PNG"),
             "image/png", "\n".join(big_lines)),
        Page("40 MP JPEG photo, uneven light (cleaned)", _encoded(photo, "JPEG", quality=85), "image/jpeg",
             "\n".join(big_lines)),
    ]


def _photographed(scan: Image.Image) -> Image.Image:
    """The scan as a phone sees it: yellowish paper, its light falling off to 45 % across the page."""
    gray = np.asarray(scan, dtype=np.float32) * np.linspace(1.0, 0.45, scan.width, dtype=np.float32)[None, :]
    rgb = np.stack([gray, gray * 0.97, gray * 0.85], axis=-1)
    return Image.fromarray(rgb.clip(0, 255).astype(np.uint8), "RGB")


def _encoded(image: Image.Image, fmt: str, **save: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, dpi=(BIG_DPI, BIG_DPI), **save)
    return buffer.getvalue()


def _pdf_of(image: Image.Image, page_pt: tuple[float, float]) -> bytes:
    doc = pymupdf.open()
    page = doc.new_page(width=page_pt[0], height=page_pt[1])
    page.insert_image(page.rect, stream=_encoded(image, "JPEG", quality=85))
    return bytes(doc.tobytes(garbage=3, deflate=True))


class TreeSampler:
    """The peak of the summed RSS of a process and its descendants, sampled on a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kb = 0
        self.peak_by_role: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            by_role = _tree_rss_kb(self.pid)
            self.peak_kb = max(self.peak_kb, sum(by_role.values()))
            for role, kb in by_role.items():
                self.peak_by_role[role] = max(self.peak_by_role.get(role, 0), kb)
            time.sleep(SAMPLE_EVERY_S)


def _tree_rss_kb(pid: int) -> dict[str, int]:
    """RSS (KB) of the worker, of its page processes together, and of their Tesseract runs together. A child
    not yet exec'd (still the page process's image, after a fork) shares its parent's pages: not counted."""
    import psutil

    by_role = {"worker": rss_kb(pid), "page processes": 0, "tesseract": 0}
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(pid).children():
            by_role["page processes"] += rss_kb(child.pid)
            with contextlib.suppress(psutil.Error):
                for grandchild in child.children(recursive=True):
                    if grandchild.name() == "tesseract":
                        by_role["tesseract"] += rss_kb(grandchild.pid)
    return by_role


@dataclass
class Run:
    idle_mb: float = 0.0
    peak_mb: dict[str, float] = field(default_factory=dict)
    roles_mb: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    cer_pct: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


async def _measure(ctx: Context, name: str, root: Path, pages: list[Page]) -> Run:
    from tests.unit.ocr_samples import cer

    run = Run()
    with run_service(ctx.server, ctx.logdir, name=name, root=root) as service:
        worker = service.workers[0].pid
        await asyncio.sleep(1.0)  # the page processes have imported their libraries
        run.idle_mb = sum(_tree_rss_kb(worker).values()) / 1024
        for page in pages:
            async with http_client(service.url) as client:
                await client.delete("/cache")
            with TreeSampler(worker) as sampler:
                try:
                    seconds, job, _ = await run_job(service.url, page.document, force_ocr="true")
                except RuntimeError as exc:
                    run.errors[page.label] = str(exc)[:200]
                    continue
            run.peak_mb[page.label] = sampler.peak_kb / 1024
            run.roles_mb[page.label] = {role: kb / 1024 for role, kb in sampler.peak_by_role.items()}
            run.seconds[page.label] = seconds
            async with http_client(service.url) as client:
                text = (await client.get(f"/jobs/{job['id']}/result", params={"format": "text"})).text
            run.cer_pct[page.label] = 100 * await asyncio.to_thread(cer, page.truth, text)
    return run


@contextlib.contextmanager
def _baseline_checkout() -> Iterator[tuple[Path, str] | None]:
    """The service at MEMORY_BASELINE exported to a temporary directory, with its commit; None when that
    ref is unknown or its service is this checkout's."""
    ref = os.environ.get("MEMORY_BASELINE", "main")

    def git(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, timeout=60, check=False)

    commit = git("rev-parse", "--verify", f"{ref}^{{commit}}")
    if commit.returncode != 0 or git("diff", "--quiet", ref, "--", *_SERVICE_FILES).returncode == 0:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="ocr-bench-baseline-") as tmp:
        archive = git("archive", "--format=tar", ref)
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(tmp, filter="data")
        yield Path(tmp), commit.stdout.decode().strip()[:10]


async def run(ctx: Context) -> Section:
    section = Section(KEY, TITLE)
    pages = await asyncio.to_thread(_pages, ctx.quick)
    load_before = os.getloadavg()
    with _baseline_checkout() as baseline:
        before = await _measure(ctx, "memory-baseline", baseline[0], pages) if baseline else None
        after = await _measure(ctx, "memory", ROOT, pages)
    base_label = f"main ({baseline[1]})" if baseline else ""
    for page in pages:
        if page.label in after.errors:
            section.add(f"peak worker-tree RSS: {page.label}", float("nan"), "MB", note=after.errors[page.label])
            continue
        was = before.peak_mb.get(page.label) if before else None
        roles = after.roles_mb[page.label]
        section.add(f"peak worker-tree RSS: {page.label}", after.peak_mb[page.label], "MB",
                    target=f"<= {BOUND_MB} MB", bound=BOUND_MB, baseline=was, baseline_label=base_label,
                    note="peaks apart: " + ", ".join(f"{role} {mb:.0f} MB" for role, mb in roles.items()))
        section.add(f"CER: {page.label}", after.cer_pct[page.label], "%",
                    baseline=before.cer_pct.get(page.label) if before else None, baseline_label=base_label)
        section.add(f"seconds end to end: {page.label}", after.seconds[page.label], "s",
                    baseline=before.seconds.get(page.label) if before else None, baseline_label=base_label)
    section.add("idle worker tree RSS (worker and its page processes)", after.idle_mb, "MB",
                baseline=before.idle_mb if before else None, baseline_label=base_label)
    if before:
        for label, error in before.errors.items():
            section.notes.append(f"- The baseline failed on {label}: {error}")
        section.notes += [
            f"- Baseline peaks apart, {label}: " + ", ".join(f"{role} {mb:.0f} MB" for role, mb in roles.items())
            for label, roles in before.roles_mb.items()
        ]
    else:
        section.notes.append("- No baseline: MEMORY_BASELINE names no commit, or its service is this one.")
    section.notes.append(
        f"- One worker, OCR_CONCURRENCY {ctx.cores} (one page process per core), one job at a time, RSS summed every "
        f"{SAMPLE_EVERY_S * 1000:.0f} ms; load average {', '.join(f'{x:.2f}' for x in load_before)} before, "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())} after."
    )
    return section
