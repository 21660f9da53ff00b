"""A page's words: the one stored representation of its text and geometry.

Every page keeps its words, line by line, with the frame they were found in, and everything else
is made from them: the page's text, the `words` of `?detail=words`, hOCR, ALTO and the searchable
PDF's invisible text layer. An OCR page's words are kept as Tesseract read them (integer pixels of
the image it was given, which deskewing turned and grew), with that image's place on the upright
page, so the text layer is written exactly as from Tesseract's own output; a text-layer page's words
are kept in tenths of a point. The public boxes are computed from that frame on the way out: in the
upright page's own units (its `width` and `height`), origin top left.

Stored compactly (the JSON of `to_json()`): one array per line, `[block, par, top, bottom, [texts],
[numbers]]`, where each word's numbers are its left edge counted from the previous word's right edge,
its top counted from the line's, its width and height, then its confidence (OCR pages only).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from service.ocr.markup import printable_word
from service.ocr.tsv import TsvWord

# A text-layer page's coordinates are kept at this resolution: 720 units an inch, a tenth of a point.
TEXT_LAYER_DPI = 720
# What a word's confidence is stored as when Tesseract gave none.
_NO_CONFIDENCE = -1


@dataclass(frozen=True)
class Frame:
    """Where the words' coordinates lie. They were read on an image `read` units in size: the upright
    page (`page` units in size) turned `skew_deg` degrees counter-clockwise about its centre and grown
    to keep its corners. `dpi` is the units an inch."""

    dpi: int
    read: tuple[int, int]
    page: tuple[int, int]
    skew_deg: float = 0.0

    def to_upright(self, x: float, y: float) -> tuple[float, float]:
        """A point of the read image on the upright page (y grows down)."""
        radians = math.radians(self.skew_deg)
        cos, sin = math.cos(radians), math.sin(radians)
        dx, dy = x - self.read[0] / 2, y - self.read[1] / 2
        return self.page[0] / 2 + dx * cos - dy * sin, self.page[1] / 2 + dx * sin + dy * cos


@dataclass(frozen=True)
class Line:
    block: int  # 1-based in reading order across the page; a text-layer page's blocks are its paragraphs
    par: int  # 1-based in reading order across the page
    top: int  # the line's band in the frame: a layer's words sit on its bottom and span its height
    bottom: int
    texts: tuple[str, ...]
    boxes: tuple[tuple[int, int, int, int], ...]  # left, top, width, height in the frame
    confidences: tuple[int, ...] | None  # 0..100 per word (-1: none); None on a text-layer page


@dataclass(frozen=True)
class PageWords:
    frame: Frame
    lines: tuple[Line, ...] = ()

    def text(self, paragraph_gap: str) -> str:
        """Words joined by spaces, lines by newlines, paragraphs by `paragraph_gap`."""
        paragraphs: list[list[str]] = []
        previous: tuple[int, int] | None = None
        for line in self.lines:
            if (line.block, line.par) != previous:
                paragraphs.append([])
                previous = (line.block, line.par)
            paragraphs[-1].append(" ".join(line.texts))
        return paragraph_gap.join("\n".join(lines) for lines in paragraphs)

    def words(self, page_width: float, page_height: float) -> list[dict[str, Any]]:
        """The API's words: text, confidence, bbox on the upright page in its units, line and block."""
        return [word for _, words in self.placed_lines(page_width, page_height) for word in words]

    def placed_lines(self, page_width: float, page_height: float) -> Iterator[tuple[Line, list[dict[str, Any]]]]:
        """Each line with its words as the API gives them (see words()), for the layouts made from them."""
        scale_x, scale_y = page_width / max(self.frame.page[0], 1), page_height / max(self.frame.page[1], 1)
        for number, line in enumerate(self.lines, 1):
            words = []
            for index, (text, box) in enumerate(zip(line.texts, line.boxes, strict=True)):
                x0, y0, x1, y1 = self._upright_box(box)
                confidence = None if line.confidences is None else line.confidences[index]
                words.append(
                    {
                        "text": text,
                        "confidence": None if confidence is None or confidence < 0 else confidence,
                        "bbox": [
                            round(x0 * scale_x, 2),
                            round(y0 * scale_y, 2),
                            round(x1 * scale_x, 2),
                            round(y1 * scale_y, 2),
                        ],
                        "line": number,
                        "block": line.block,
                    }
                )
            yield line, words

    def _upright_box(self, box: tuple[int, int, int, int]) -> tuple[float, float, float, float]:
        """A word's box on the upright page: the box of its corners put back from the read image, kept
        inside the page."""
        left, top, width, height = box
        page_w, page_h = self.frame.page
        if self.frame.skew_deg == 0 and self.frame.read == self.frame.page:
            # Read as it lies (every text-layer page, most scans): the box is already on the page.
            x0, y0, x1, y1 = float(left), float(top), float(left + width), float(top + height)
        else:
            corners = [self.frame.to_upright(x, y) for x in (left, left + width) for y in (top, top + height)]
            xs, ys = [x for x, _ in corners], [y for _, y in corners]
            x0, y0, x1, y1 = min(xs), min(ys), max(xs), max(ys)
        return (
            min(max(x0, 0.0), page_w),
            min(max(y0, 0.0), page_h),
            min(max(x1, 0.0), page_w),
            min(max(y1, 0.0), page_h),
        )

    def tsv_words(self) -> list[TsvWord]:
        """The words as Tesseract gave them, for the searchable PDF's text layer (layer.py)."""
        out = []
        for line in self.lines:
            for index, (text, (left, top, width, height)) in enumerate(zip(line.texts, line.boxes, strict=True)):
                last = index + 1 == len(line.texts)
                out.append(TsvWord(text, left, top, width, height, line.top, line.bottom, last))
        return out

    def to_json(self) -> list[Any]:
        f = self.frame
        lines: list[Any] = []
        for line in self.lines:
            numbers: list[int] = []
            right = 0
            for index, (left, top, width, height) in enumerate(line.boxes):
                numbers += [left - right, top - line.top, width, height]
                if line.confidences is not None:
                    numbers.append(line.confidences[index])
                right = left + width
            lines.append([line.block, line.par, line.top, line.bottom, list(line.texts), numbers])
        return [[f.dpi, *f.read, *f.page, f.skew_deg], lines]

    @classmethod
    def from_json(cls, data: list[Any], *, with_confidence: bool) -> PageWords:
        (dpi, read_w, read_h, page_w, page_h, skew_deg), raw_lines = data
        stride = 5 if with_confidence else 4
        lines = []
        for block, par, top, bottom, texts, numbers in raw_lines:
            boxes, confidences, right = [], [], 0
            for at in range(0, len(numbers), stride):
                gap, dy, width, height = numbers[at : at + 4]
                boxes.append((right + gap, top + dy, width, height))
                right += gap + width
                if with_confidence:
                    confidences.append(numbers[at + 4])
            scores = tuple(confidences) if with_confidence else None
            lines.append(Line(block, par, top, bottom, tuple(texts), tuple(boxes), scores))
        return cls(Frame(dpi, (read_w, read_h), (page_w, page_h), skew_deg), tuple(lines))


def from_tsv(words: Sequence[TsvWord], frame: Frame) -> PageWords:
    """Tesseract's words, in its reading order, grouped into its lines."""
    lines = []
    for group in _tsv_lines(words):
        first = group[0]
        lines.append(
            Line(
                block=first.block,
                par=first.par,
                top=first.line_top,
                bottom=first.line_bottom,
                texts=tuple(w.text for w in group),
                boxes=tuple((w.left, w.top, w.width, w.height) for w in group),
                confidences=tuple(_NO_CONFIDENCE if w.confidence is None else round(w.confidence) for w in group),
            )
        )
    return PageWords(frame, tuple(lines))


def _tsv_lines(words: Sequence[TsvWord]) -> Iterator[list[TsvWord]]:
    group: list[TsvWord] = []
    for word in words:
        group.append(word)
        if word.last_in_line:
            yield group
            group = []
    if group:
        yield group


TextLayerWord = tuple[float, float, float, float, str, int, int, int]  # PyMuPDF's get_text("words") rows


def from_text_layer(rows: Sequence[TextLayerWord], page_size: tuple[float, float]) -> PageWords:
    """A text layer's words (PyMuPDF's rows, boxes already on the page as shown, in points), in reading
    order: blocks from top to bottom (by their lower edge, then their left, as PyMuPDF sorts blocks),
    lines and words within a block in the order the layer has them."""
    # Every text-layer page passes here, word by word (BENCHMARKS.md section 2): plain tuples and one
    # dict look-up a word, since a helper call or a nested dict a word cost a fifth of the page's time.
    units = TEXT_LAYER_DPI / 72
    # (block, line) -> [(word number, text, box in units)]; PyMuPDF gives them in this order already.
    placed_lines: dict[tuple[int, int], list[tuple[int, str, tuple[int, int, int, int]]]] = {}
    edges: dict[int, list[float]] = {}  # block -> [lowest bottom, leftmost left], to sort blocks
    for x0, y0, x1, y1, raw, block, line, word in rows:
        text = raw if raw.isprintable() and " " not in raw else printable_word(raw)
        if not text:
            continue
        left, top = round(x0 * units), round(y0 * units)
        width, height = round(x1 * units) - left, round(y1 * units) - top
        box = (left, top, width if width > 0 else 0, height if height > 0 else 0)
        placed = placed_lines.get((block, line))
        if placed is None:
            placed = placed_lines[(block, line)] = []
        placed.append((word, text, box))
        edge = edges.get(block)
        if edge is None:
            edges[block] = [y1, x0]
        else:
            if y1 > edge[0]:
                edge[0] = y1
            if x0 < edge[1]:
                edge[1] = x0

    rank = {block: number for number, block in enumerate(sorted(edges, key=edges.__getitem__), 1)}
    lines: list[Line] = []
    for key in sorted(placed_lines, key=lambda block_line: (rank[block_line[0]], block_line[1])):
        placed = sorted(placed_lines[key])
        boxes = tuple([box for _, _, box in placed])
        number = rank[key[0]]
        top = min([box[1] for box in boxes])
        bottom = max([box[1] + box[3] for box in boxes])
        lines.append(Line(number, number, top, bottom, tuple([text for _, text, _ in placed]), boxes, None))
    size = (round(page_size[0] * units), round(page_size[1] * units))
    return PageWords(Frame(TEXT_LAYER_DPI, size, size), tuple(lines))
