"""Turning Tesseract's TSV output into page text, a page confidence and the words' places."""

from __future__ import annotations

from dataclasses import dataclass, field

# TSV columns: level page_num block_num par_num line_num word_num left top width height conf text
_LINE_LEVEL = "4"
_WORD_LEVEL = "5"
_COLUMNS = 12


@dataclass(frozen=True)
class TsvWord:
    text: str
    left: int  # the word's box in image pixels
    top: int
    width: int
    height: int
    line_top: int  # the box of the line it is on: words of a line share one baseline and size
    line_bottom: int
    last_in_line: bool
    confidence: float | None = None  # 0..100, None when Tesseract gave no score
    block: int = 1  # Tesseract's block number (1-based)
    par: int = 1  # the paragraph's number across the page (1-based), as the text groups them


@dataclass(frozen=True)
class TsvText:
    text: str
    confidence: float | None  # mean word confidence 0..100, None when no word was recognised
    word_count: int
    words: list[TsvWord] = field(default_factory=list)


def parse_tsv(tsv: str) -> TsvText:
    """Lines are the words of a (block, par, line) joined by spaces; paragraphs are separated by a blank line."""
    paragraphs: dict[tuple[str, str], dict[str, list[str]]] = {}
    line_boxes: dict[tuple[str, str, str], tuple[int, int]] = {}
    placed: list[tuple[tuple[str, str, str], str, list[int], float]] = []
    confidences: list[float] = []
    for row in tsv.splitlines()[1:]:
        fields = row.split("\t", _COLUMNS - 1)
        if len(fields) < _COLUMNS:
            continue
        block, par, line = fields[2], fields[3], fields[4]
        if fields[0] == _LINE_LEVEL:
            top, height = int(fields[7]), int(fields[9])
            line_boxes[(block, par, line)] = (top, top + height)
            continue
        if fields[0] != _WORD_LEVEL:
            continue
        word = fields[11].strip()
        if not word:
            continue
        paragraphs.setdefault((block, par), {}).setdefault(line, []).append(word)
        conf = float(fields[10])
        placed.append(((block, par, line), word, [int(v) for v in fields[6:10]], conf))
        # Tesseract writes -1 for rows that carry no recognition score.
        if conf >= 0:
            confidences.append(conf)
    # Tesseract emits rows in reading order, and dicts keep insertion order.
    text = "\n\n".join("\n".join(" ".join(words) for words in lines.values()) for lines in paragraphs.values())
    confidence = sum(confidences) / len(confidences) if confidences else None
    words = []
    # Paragraphs numbered across the page, as the text groups them.
    paragraph_numbers = {key: number for number, key in enumerate(paragraphs, 1)}
    for number, (line_key, word, (left, top, width, height), conf) in enumerate(placed):
        line_top, line_bottom = line_boxes.get(line_key, (top, top + height))
        last = number + 1 == len(placed) or placed[number + 1][0] != line_key
        scored = conf if conf >= 0 else None
        block_number, par_number = int(line_key[0]), paragraph_numbers[line_key[:2]]
        words.append(
            TsvWord(word, left, top, width, height, line_top, line_bottom, last, scored, block_number, par_number)
        )
    return TsvText(text, confidence, len(confidences), words)
