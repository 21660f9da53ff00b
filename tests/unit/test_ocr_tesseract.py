from __future__ import annotations

import os
import subprocess
import threading
import time

import numpy as np
import pytest

from service.errors import OcrCancelled, TransientOcrError
from service.ocr import CancelToken, PageOptions, installed_languages, process_page, tesseract
from tests.unit import ocr_samples


def blank_page(width: int = 200, height: int = 100) -> np.ndarray:
    return np.full((height, width), 255, dtype=np.uint8)


def busy_pdf() -> bytes:
    """A page dense enough with text that OCR at 300 dpi takes several seconds."""
    lines = [" ".join(ocr_samples.LINES[i % 6].split()[::-1]) for i in range(60)]
    image = ocr_samples.scan(lines, dpi=300, width_pt=1224, height_pt=1584, fontsize=12)
    return ocr_samples.scanned_pdf([image], dpi=300)


def tesseract_children() -> list[int]:
    """Live tesseract processes started by this test process."""
    found = subprocess.run(["pgrep", "-P", str(os.getpid()), "tesseract"], capture_output=True, text=True, check=False)
    return [int(pid) for pid in found.stdout.split()]


def test_installed_languages() -> None:
    languages = installed_languages()
    assert "eng" in languages
    assert "osd" not in languages


def test_pixels_reach_tesseract() -> None:
    run = tesseract.run(blank_page(), ["--psm", "3", "tsv"], output_exts=("tsv",), timeout_s=30, cancel=CancelToken())
    assert run.returncode == 0
    assert run.outputs["tsv"].startswith(b"level\t")


def test_recognise_writes_tsv() -> None:
    image = np.asarray(ocr_samples.scan(ocr_samples.LINES[:2], dpi=150))
    tsv = tesseract.recognise(image, lang="eng", dpi=150, timeout_s=30, cancel=CancelToken())
    assert "\tquick\t" in tsv.replace("\n", "\t")


def test_cancelled_token_never_starts_a_process(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_popen(*args: object, **kwargs: object) -> None:
        raise AssertionError("tesseract was started")

    monkeypatch.setattr(subprocess, "Popen", no_popen)
    token = CancelToken()
    token.cancel()
    with pytest.raises(OcrCancelled):
        tesseract.run(blank_page(), ["tsv"], output_exts=("tsv",), timeout_s=5, cancel=token)


def test_register_after_cancel_kills_the_process() -> None:
    token = CancelToken()
    token.cancel()
    process = subprocess.Popen(["sleep", "30"])
    with pytest.raises(OcrCancelled):
        token.register(process)
    assert process.wait(timeout=2) < 0


def test_cancel_kills_a_running_page_quickly() -> None:
    data = busy_pdf()
    token = CancelToken()
    outcome: list[BaseException | object] = []

    def work() -> None:
        try:
            outcome.append(process_page(data, "application/pdf", 0, PageOptions(), token))
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    # Cancel while tesseract is really running, so the kill (not a flag check) is what is tested.
    deadline = time.monotonic() + 10
    while not tesseract_children() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert tesseract_children(), "tesseract never started"
    time.sleep(0.3)
    cancelled_at = time.perf_counter()
    token.cancel()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert time.perf_counter() - cancelled_at < 2.0
    assert len(outcome) == 1 and isinstance(outcome[0], OcrCancelled)
    assert tesseract_children() == []


def test_timeout_kills_tesseract_and_is_transient() -> None:
    # The message says the run was stopped at its 0.3 s limit: killed, not left to finish its page.
    with pytest.raises(TransientOcrError, match="exceeded its 0.3 s timeout"):
        process_page(busy_pdf(), "application/pdf", 0, PageOptions(timeout_s=0.3), CancelToken())
    assert tesseract_children() == []


def test_tesseract_failure_is_transient() -> None:
    with pytest.raises(TransientOcrError):
        tesseract.recognise(blank_page(), lang="xx_not_installed", dpi=150, timeout_s=30, cancel=CancelToken())
