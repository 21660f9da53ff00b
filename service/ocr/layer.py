"""The invisible text layer of an OCR page, written as a one-page PDF from the words Tesseract found.

Tesseract can write this PDF itself (`-c textonly_pdf=1 pdf`), but that output costs about 0.05 CPU s
a page (3% of a reading) and lays the text on the image as Tesseract saw it, levelled, so skewed pages
needed a second pass through PyMuPDF to turn it back. Writing it here from the TSV's word boxes costs
a millisecond and places every word straight onto the upright page.

The format is the one Tesseract's own renderer uses, so every viewer handles it: invisible text
(render mode 3) in a Type0 font whose character codes are UTF-16 code units, with an identity
ToUnicode map so that extraction and search give back the text, and whose every code draws the one
blank glyph of Tesseract's `pdf.ttf` (embedded when it can be found; the text works without it).
Each word gets its own text matrix: placed at its line's baseline, sized to the line, stretched to
its box and turned by the page's skew.
"""

from __future__ import annotations

import functools
import glob
import logging
import math
import os
import zlib
from collections.abc import Sequence
from pathlib import Path

from service.ocr.tsv import TsvWord

logger = logging.getLogger(__name__)

FONT_NAME = "GlyphLessFont"
# Every glyph of the font is this wide, in thousandths of the font size.
_GLYPH_WIDTH = 500
_TO_UNICODE = b"""/CIDInit /ProcSet findresource begin
12 dict begin
begincmap
/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def
/CMapName /Adobe-Identity-UCS def
/CMapType 2 def
1 begincodespacerange
<0000> <FFFF>
endcodespacerange
1 beginbfrange
<0000> <FFFF> <0000>
endbfrange
endcmap
CMapName currentdict /CMap defineresource pop
end
end
"""
# Every character code draws glyph 1, the font's only blank glyph.
_CID_TO_GID = zlib.compress(b"\x00\x01" * 65536)


def text_layer_pdf(
    words: Sequence[TsvWord],
    *,
    dpi: int,
    read_size: tuple[int, int],
    page_size: tuple[int, int],
    turned_deg: float = 0.0,
) -> bytes:
    """A one-page PDF of `words` as invisible text, the size of the page image (`page_size`, pixels at
    `dpi`). The words were read on a copy of that image turned `turned_deg` degrees counter-clockwise
    about its centre and grown to `read_size` pixels to keep its corners (deskewing); each is put
    back where it was on the unturned image."""
    points = 72.0 / dpi
    width, height = page_size
    read_width, read_height = read_size
    radians = math.radians(turned_deg)
    cos, sin = math.cos(radians), math.sin(radians)
    content = ["BT", "3 Tr"]
    for word in words:
        size_px = max(1, word.line_bottom - word.line_top)
        # The word's baseline start, from the turned copy back onto the page image (y grows down)...
        dx, dy = word.left - read_width / 2, word.line_bottom - read_height / 2
        x_px, y_px = width / 2 + dx * cos - dy * sin, height / 2 + dx * sin + dy * cos
        # ... and into PDF space (points, y grows up), where the baseline runs at -turned_deg.
        units = word.text.encode("utf-16-be")
        # Horizontal scaling (Tz, percent) that makes the word's glyphs span its box; never zero.
        glyphs = max(1, len(units) // 2)
        stretch = max(1.0, 100.0 * word.width / (glyphs * size_px * _GLYPH_WIDTH / 1000))
        codes = units.hex().upper() + ("" if word.last_in_line else "0020")
        content.append(
            f"/F1 {size_px * points:.2f} Tf {cos:.5f} {-sin:.5f} {sin:.5f} {cos:.5f} "
            f"{x_px * points:.2f} {(height - y_px) * points:.2f} Tm {stretch:.2f} Tz <{codes}> Tj"
        )
    content.append("ET")
    return _pdf(width * points, height * points, zlib.compress("\n".join(content).encode("ascii")))


def _pdf(width_pt: float, height_pt: float, content: bytes) -> bytes:
    font_file = glyphless_font()
    descriptor = (
        f"<< /Type /FontDescriptor /FontName /{FONT_NAME} /Flags 5 /FontBBox [0 0 {_GLYPH_WIDTH} 1000] "
        "/ItalicAngle 0 /Ascent 1000 /Descent 0 /CapHeight 1000 /StemV 80"
    ).encode()
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {width_pt:.2f} {height_pt:.2f}] "
        "/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>".encode(),
        _stream(content, b"/Filter /FlateDecode"),
        f"<< /Type /Font /Subtype /Type0 /BaseFont /{FONT_NAME} /Encoding /Identity-H "
        "/DescendantFonts [6 0 R] /ToUnicode 7 0 R >>".encode(),
        f"<< /Type /Font /Subtype /CIDFontType2 /BaseFont /{FONT_NAME} "
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> "
        f"/FontDescriptor 8 0 R /DW {_GLYPH_WIDTH} /CIDToGIDMap 9 0 R >>".encode(),
        _stream(_TO_UNICODE, b""),
        descriptor + (b" /FontFile2 10 0 R >>" if font_file else b" >>"),
        _stream(_CID_TO_GID, b"/Filter /FlateDecode"),
    ]
    if font_file:
        objects.append(_stream(font_file, b"/Length1 %d" % len(font_file)))
    out = bytearray(b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _stream(data: bytes, entries: bytes) -> bytes:
    return b"<< /Length %d %s >>\nstream\n" % (len(data), entries) + data + b"\nendstream"


@functools.cache
def glyphless_font() -> bytes | None:
    """Tesseract's blank font, `pdf.ttf` in its tessdata folder, or None where it is not installed."""
    prefix = os.environ.get("TESSDATA_PREFIX")
    candidates = [str(Path(prefix) / "pdf.ttf"), str(Path(prefix) / "tessdata" / "pdf.ttf")] if prefix else []
    for pattern in ("/usr/share/tesseract-ocr/*/tessdata", "/usr/share/tessdata", "/usr/local/share/tessdata"):
        candidates += sorted(glob.glob(f"{pattern}/pdf.ttf"), reverse=True)
    for candidate in candidates:
        if os.path.isfile(candidate):
            return Path(candidate).read_bytes()
    logger.warning("Tesseract's pdf.ttf was not found: searchable PDFs carry their text without a font file")
    return None
