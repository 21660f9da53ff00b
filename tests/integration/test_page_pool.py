"""The page pool with real child processes: replacements that fail to start, waits that must end."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from service.errors import OcrCancelled, TextTooLarge, TransientOcrError
from service.ocr import CancelToken, PageOptions
from service.worker import page_pool
from service.worker.page_pool import PagePool
from tests.unit import ocr_samples
from tests.unit.ocr_samples import text_pdf

PDF = "application/pdf"


@pytest.fixture
def document(tmp_path: Path) -> Path:
    path = tmp_path / "doc.pdf"
    path.write_bytes(text_pdf())
    return path


def failing_starts(monkeypatch: pytest.MonkeyPatch, failures: int | None) -> list[int]:
    """Make the next `failures` child starts (None: all of them) fail as an exhausted machine would."""
    real_start = page_pool._Child.start.__func__  # type: ignore[attr-defined]
    calls: list[int] = []

    async def start(cls: type[page_pool._Child], memory_bytes: int) -> page_pool._Child:
        calls.append(1)
        if failures is None or len(calls) <= failures:
            raise OSError(11, "Resource temporarily unavailable")
        return await real_start(cls, memory_bytes)

    monkeypatch.setattr(page_pool._Child, "start", classmethod(start))
    monkeypatch.setattr(page_pool, "REPLACE_FIRST_DELAY_S", 0.05, raising=False)
    return calls


async def lose_the_only_child(pool: PagePool, document: Path) -> None:
    """A page past its deadline: its child is killed and a replacement is started."""
    with pytest.raises(TransientOcrError):
        await pool.run_page(document, PDF, 0, PageOptions(), CancelToken(), deadline_s=0.001)


async def test_a_replacement_that_fails_to_start_is_tried_again_until_it_does(
    document: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    pool = PagePool(1, memory_bytes=0)
    await pool.start()
    try:
        calls = failing_starts(monkeypatch, failures=2)
        with caplog.at_level(logging.WARNING, logger=page_pool.__name__):
            await lose_the_only_child(pool, document)
            async with asyncio.timeout(20):
                page, _ = await pool.run_page(document, PDF, 0, PageOptions(), CancelToken(), deadline_s=30)
        assert page.source == "text-layer" and len(calls) == 3
        assert sum("could not be started" in r.getMessage() for r in caplog.records) == 2
    finally:
        await pool.close()


async def test_waiting_for_a_child_ends_with_the_jobs_cancel(document: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pool = PagePool(1, memory_bytes=0)
    await pool.start()
    try:
        failing_starts(monkeypatch, failures=None)
        await lose_the_only_child(pool, document)
        token = CancelToken()
        waiting = asyncio.create_task(pool.run_page(document, PDF, 0, PageOptions(), token, deadline_s=60))
        await asyncio.sleep(0.3)  # the page is waiting for a child that cannot come
        assert not waiting.done()
        token.cancel()
        async with asyncio.timeout(5):
            with pytest.raises(OcrCancelled):
                await waiting
    finally:
        await pool.close()


async def test_waiting_for_a_child_ends_at_the_page_deadline(document: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(page_pool, "WAIT_SLACK_S", 0.5, raising=False)
    pool = PagePool(1, memory_bytes=0)
    await pool.start()
    try:
        failing_starts(monkeypatch, failures=None)
        await lose_the_only_child(pool, document)
        async with asyncio.timeout(10):
            with pytest.raises(TransientOcrError, match="no page process came free"):
                await pool.run_page(document, PDF, 0, PageOptions(), CancelToken(), deadline_s=1)
    finally:
        await pool.close()


async def test_a_page_over_its_text_cap_is_refused_in_its_process(document: Path) -> None:
    pool = PagePool(1, memory_bytes=0, max_page_bytes=100)
    await pool.start()
    try:
        with pytest.raises(TextTooLarge, match="at most 0 KB"):
            await pool.run_page(document, PDF, 0, PageOptions(), CancelToken(), deadline_s=30)
    finally:
        await pool.close()


async def test_a_40_megapixel_photo_is_read_within_600_mb_of_address_space(tmp_path: Path) -> None:
    """A 40-megapixel photographed page goes through every step (render, the check, the cleaning, the
    skew, Tesseract) in a page process limited as PAGE_MEMORY_MB=600 limits it: RLIMIT_AS, inherited by
    its Tesseract. The libraries alone map 360 MB of that, so a page's work has about 240 MB: a full-size
    copy too many, or a page of floats (160 MB), ends the page with a memory error and fails this test."""
    image = ocr_samples.scan(dpi=450, width_pt=1216, height_pt=832, fontsize=18, skew_deg=1.5)
    assert image.width * image.height > 39_000_000
    light = np.linspace(1.0, 0.45, image.width, dtype=np.float32)[None, :]
    photo = Image.fromarray((np.asarray(image, dtype=np.float32) * light).astype(np.uint8))
    path = tmp_path / "photo.jpg"
    photo.save(path, "JPEG", quality=90, dpi=(450, 450))
    pool = PagePool(1, memory_bytes=600 * 1024 * 1024)
    await pool.start()
    try:
        page, _ = await pool.run_page(path, "image/jpeg", 0, PageOptions(), CancelToken(), deadline_s=120)
    finally:
        await pool.close()
    assert page.preprocessed and ocr_samples.cer(ocr_samples.TEXT, page.text) < 0.05
