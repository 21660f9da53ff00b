"""The environment a child process is started with: what it needs to run, none of the service's secrets.

The page processes and Tesseract run hostile documents. Inheriting the parent's environment would hand
them `API_KEYS`, `SECRET_KEY`, `WEBHOOK_SECRET` and `REDIS_URL` (with its password), readable by anything
that gets code running there and by anyone who can read `/proc/<pid>/environ`. So a child gets only
these names, and whatever its starter adds on purpose.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

# Where programs and their libraries are (the apt buildpack puts Tesseract's under /app/.apt), the
# locale, the time zone, the scratch directory and Tesseract's language data.
PASSED = ("PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TESSDATA_PREFIX", "LD_LIBRARY_PATH")
PASSED_PREFIXES = ("LC_",)


def minimal_env(extra: Mapping[str, str] | None = None, *, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The passed names of `environ` (default: this process's environment), plus `extra`."""
    source = os.environ if environ is None else environ
    env = {name: value for name, value in source.items() if name in PASSED or name.startswith(PASSED_PREFIXES)}
    return env | dict(extra or {})
