"""Cancelling page work that is in flight, from another thread."""

from __future__ import annotations

import logging
import subprocess
import threading

from service.errors import OcrCancelled

logger = logging.getLogger(__name__)


class CancelToken:
    """A thread-safe flag that also kills every tesseract process registered with it.

    The flag alone is not enough: a page spends almost all of its time inside one tesseract run, so
    cancel() has to end that run rather than wait for the next check.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancelled = False
        self._processes: set[subprocess.Popen[bytes]] = set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            processes = list(self._processes)
        for process in processes:
            _kill(process)
        if processes:
            logger.info("cancel killed %d tesseract process(es)", len(processes))

    def raise_if_cancelled(self) -> None:
        if self._cancelled:
            raise OcrCancelled("the job was cancelled")

    def register(self, process: subprocess.Popen[bytes]) -> None:
        """Track a running process; kill it at once if the token was cancelled meanwhile."""
        with self._lock:
            if not self._cancelled:
                self._processes.add(process)
                return
        # Cancelled between the caller's check and Popen: the process must not outlive the job.
        _kill(process)
        raise OcrCancelled("the job was cancelled")

    def unregister(self, process: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._processes.discard(process)


def _kill(process: subprocess.Popen[bytes]) -> None:
    try:
        process.kill()
    except ProcessLookupError:  # already reaped
        pass
