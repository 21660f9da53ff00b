"""Turning Tesseract's TSV output into page text and a page confidence."""

from __future__ import annotations

from dataclasses import dataclass

# TSV columns: level page_num block_num par_num line_num word_num left top width height conf text
_WORD_LEVEL = "5"
_COLUMNS = 12


@dataclass(frozen=True)
class TsvText:
    text: str
    confidence: float | None  # mean word confidence 0..100, None when no word was recognised
    word_count: int


def parse_tsv(tsv: str) -> TsvText:
    """Lines are the words of a (block, par, line) joined by spaces; paragraphs are separated by a blank line."""
    paragraphs: dict[tuple[str, str], dict[str, list[str]]] = {}
    confidences: list[float] = []
    for row in tsv.splitlines()[1:]:
        fields = row.split("\t", _COLUMNS - 1)
        if len(fields) < _COLUMNS or fields[0] != _WORD_LEVEL:
            continue
        word = fields[11].strip()
        if not word:
            continue
        block, par, line = fields[2], fields[3], fields[4]
        paragraphs.setdefault((block, par), {}).setdefault(line, []).append(word)
        conf = float(fields[10])
        # Tesseract writes -1 for rows that carry no recognition score.
        if conf >= 0:
            confidences.append(conf)
    # Tesseract emits rows in reading order, and dicts keep insertion order.
    text = "\n\n".join("\n".join(" ".join(words) for words in lines.values()) for lines in paragraphs.values())
    confidence = sum(confidences) / len(confidences) if confidences else None
    return TsvText(text, confidence, len(confidences))
