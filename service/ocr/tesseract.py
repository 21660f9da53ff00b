"""Running the tesseract binary as a subprocess this package owns.

pytesseract's image_to_* helpers start tesseract internally and never hand out the process, so a page
run could be neither killed on cancel nor killed on timeout without leaking a busy process. This runner
starts tesseract itself, registers the Popen with the job's CancelToken while it runs, and turns every
way a run can end into one of: the outputs, OcrCancelled, or TransientOcrError.

One OCR run writes the one output we need, TSV: the text, each word's confidence and its box, from
which layer.py writes the invisible text layer of the searchable PDF.
"""

from __future__ import annotations

import functools
import logging
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from service.childenv import minimal_env
from service.errors import OcrCancelled, TransientOcrError
from service.ocr.cancel import CancelToken

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

TESSERACT = "tesseract"

# OpenMP makes each tesseract use every core; with several pages in flight on a small machine the
# threads fight and a page gets ~6x slower. Pages are parallelised by the worker's pool instead.
# Nothing else of the parent's environment: no secret reaches a process that reads hostile documents.
_ENV = minimal_env({"OMP_THREAD_LIMIT": "1"})


@dataclass(frozen=True)
class TesseractRun:
    returncode: int
    stdout: bytes
    stderr: bytes
    outputs: dict[str, bytes]  # by file extension, e.g. {"tsv": ..., "pdf": ...}


def run(
    pixels: np.ndarray | Path,
    args: list[str],
    *,
    output_exts: tuple[str, ...],
    timeout_s: float,
    cancel: CancelToken,
) -> TesseractRun:
    """Run `tesseract <image> <outbase> *args` on 8-bit grayscale `pixels`, or on an image file written
    by write_image().

    Raises OcrCancelled if the token is (or gets) cancelled, TransientOcrError on timeout or death by a
    signal. A nonzero exit is returned to the caller, who knows whether it means failure.
    """
    cancel.raise_if_cancelled()
    with tempfile.TemporaryDirectory(prefix="ocr-") as tmp:
        image = pixels if isinstance(pixels, Path) else Path(tmp) / "page.tif"
        if not isinstance(pixels, Path):
            write_image(pixels, image)
        outbase = str(Path(tmp) / "out") if output_exts else "stdout"
        argv = [TESSERACT, str(image), outbase, *args]
        # The context manager closes the pipes and reaps the process however we leave.
        with subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_ENV,
        ) as process:
            try:
                cancel.register(process)
                stdout, stderr = process.communicate(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()
                if cancel.cancelled:
                    raise OcrCancelled("the job was cancelled") from None
                logger.warning("tesseract exceeded %.1f s, killed (%s)", timeout_s, " ".join(args))
                raise TransientOcrError(f"tesseract exceeded its {timeout_s:g} s timeout") from None
            finally:
                cancel.unregister(process)
                if process.poll() is None:  # an exception escaped communicate(): never leak it
                    process.kill()
        if cancel.cancelled:
            raise OcrCancelled("the job was cancelled")
        if process.returncode < 0:
            logger.warning("tesseract died from signal %d", -process.returncode)
            raise TransientOcrError(f"tesseract was killed by signal {-process.returncode}")
        outputs: dict[str, bytes] = {}
        if process.returncode == 0:
            for ext in output_exts:
                path = Path(f"{outbase}.{ext}")
                if path.exists():
                    outputs[ext] = path.read_bytes()
        return TesseractRun(process.returncode, stdout, stderr, outputs)


def recognise(pixels: np.ndarray | Path, *, lang: str, dpi: int, timeout_s: float, cancel: CancelToken) -> str:
    """OCR one upright page image (its pixels, or the file write_image() wrote them to): its TSV."""
    result = run(
        pixels,
        ["--dpi", str(dpi), "-l", lang, "--psm", "3", "tsv"],
        output_exts=("tsv",),
        timeout_s=timeout_s,
        cancel=cancel,
    )
    if result.returncode != 0 or "tsv" not in result.outputs:
        message = result.stderr.decode("utf-8", "replace").strip()[-500:]
        logger.warning("tesseract failed with exit code %d: %s", result.returncode, message)
        raise TransientOcrError(f"tesseract failed with exit code {result.returncode}: {message}")
    return result.outputs["tsv"].decode("utf-8", "replace")


@functools.cache
def installed_languages() -> frozenset[str]:
    """The languages tesseract can load, from `tesseract --list-langs`; "osd" is not a language."""
    completed = subprocess.run([TESSERACT, "--list-langs"], capture_output=True, env=_ENV, timeout=30, check=True)
    # The first line is a header ("List of available languages in ..."), the rest one name each.
    lines = completed.stdout.decode("utf-8", "replace").splitlines()[1:]
    return frozenset(name.strip() for name in lines if name.strip() and name.strip() != "osd")


def write_image(pixels: np.ndarray, path: Path) -> None:
    """8-bit grayscale pixels as an uncompressed TIFF file: the cheapest hand-over measured for a full
    300-dpi page (benchmark 1). Tesseract reads the 8 MB file in no more time than a 0.5 MB PNG, which
    costs 0.05 s to compress; any image on stdin costs more, since tesseract reads stdin a byte at a
    time (8 MB of PGM that way: +0.2 s)."""
    # Imported here: the worker and the web ask only installed_languages() of this module, and stay
    # without numpy and Pillow (a unit test in tests/unit/test_layout.py); page processes have them loaded.
    import numpy as np
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8), mode="L").save(path, "TIFF")
