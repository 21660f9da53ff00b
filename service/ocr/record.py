"""What one page stores: its page object's fields and its words (words.py), as one compressed value.

The page's text is not stored: it is made again from its words. The value is JSON compressed with
zlib: coordinates counted from their neighbours and the text's repeated letters compress well, so a
page with its words takes about what its text alone took as plain JSON (BENCHMARKS.md). The caps on
what a page may store (MAX_PAGE_TEXT_KB) measure the JSON before compression (`record_json`), since
that is what a reader holds once it opened the value; the document's cap counts the bytes stored.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from typing import Any

from service.ocr.result import PARAGRAPH_GAP, PageResult
from service.ocr.words import PageWords

# Fast, and on these records within a few percent of the best level's size.
_LEVEL = 6


def record_json(page: PageResult) -> bytes:
    """The page's record before compression."""
    fields: dict[str, Any] = {
        "number": page.number,
        "source": page.source,
        "confidence": page.confidence,
        "rotation": page.rotation,
        "width": page.width,
        "height": page.height,
        "preprocessed": page.preprocessed,
        "words": page.words.to_json(),
    }
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()


def page_record(page: PageResult) -> bytes:
    """What `ocr:pages:<id>` keeps for the page."""
    return zlib.compress(record_json(page), _LEVEL)


@dataclass(frozen=True)
class PackedPage:
    """A page made ready to store where it was read (`pack`): its record and what its event carries, so
    the worker neither unpickles its words nor encodes them again."""

    number: int
    source: str
    fields: dict[str, Any]  # the API's page object without its words (PageResult.to_dict())
    record: bytes  # page_record()
    size: int  # len(record_json()): what the caps count


def pack(page: PageResult) -> PackedPage:
    raw = record_json(page)
    return PackedPage(page.number, page.source, page.to_dict(), zlib.compress(raw, _LEVEL), len(raw))


def read_page(record: bytes) -> PageResult:
    """The page back from its stored record, its text made from its words."""
    fields = json.loads(zlib.decompress(record))
    source = fields["source"]
    words = PageWords.from_json(fields["words"], with_confidence=source == "ocr")
    return PageResult(
        number=fields["number"],
        text=words.text(PARAGRAPH_GAP[source]),
        source=source,
        confidence=fields["confidence"],
        rotation=fields["rotation"],
        width=fields["width"],
        height=fields["height"],
        preprocessed=fields["preprocessed"],
        words=words,
    )
