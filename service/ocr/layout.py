"""A page's words grouped for the XML layouts (hOCR, ALTO): blocks of paragraphs of lines of words,
each with the box around what it holds, in the unit the layout is written in."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from service.ocr.result import PageResult

Box = tuple[float, float, float, float]


@dataclass
class LayoutLine:
    number: int  # 1-based across the page
    words: list[tuple[str, Box, int | None]] = field(default_factory=list)  # text, box, confidence

    @property
    def box(self) -> Box:
        return union(box for _, box, _ in self.words)


class _Boxed(Protocol):
    @property
    def box(self) -> Box: ...


Part = TypeVar("Part", bound=_Boxed)


@dataclass
class Group(Generic[Part]):
    """A paragraph (its parts are lines) or a block (its parts are paragraphs)."""

    number: int  # 1-based across the page
    parts: list[Part] = field(default_factory=list)

    @property
    def box(self) -> Box:
        return union(part.box for part in self.parts)


LayoutPar = Group[LayoutLine]
LayoutBlock = Group[LayoutPar]


def union(boxes: Iterable[Box]) -> Box:
    x0s, y0s, x1s, y1s = zip(*boxes, strict=True)
    return min(x0s), min(y0s), max(x1s), max(y1s)


def blocks(page: PageResult, scale: float) -> list[LayoutBlock]:
    """The page's words by block, paragraph and line, their boxes multiplied by `scale` (the layout's
    units per page unit). Lines without words are left out: every element holds something."""
    out: list[LayoutBlock] = []
    for line, words in page.words.placed_lines(page.width, page.height):
        if not words:
            continue
        if not out or out[-1].number != line.block:
            out.append(LayoutBlock(line.block))
        block = out[-1]
        if not block.parts or block.parts[-1].number != line.par:
            block.parts.append(LayoutPar(line.par))
        placed = LayoutLine(words[0]["line"])
        placed.words = [(w["text"], _scaled(w, scale), w["confidence"]) for w in words]
        block.parts[-1].parts.append(placed)
    return out


def _scaled(word: dict[str, Any], scale: float) -> Box:
    x0, y0, x1, y1 = word["bbox"]
    return x0 * scale, y0 * scale, x1 * scale, y1 * scale
