from __future__ import annotations

import pytest

from service.ocr.tsv import parse_tsv

HEADER = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext"


def row(level: int, block: int, par: int, line: int, word: int, conf: float, text: str) -> str:
    return f"{level}\t1\t{block}\t{par}\t{line}\t{word}\t0\t0\t10\t10\t{conf}\t{text}"


def test_lines_and_paragraphs() -> None:
    tsv = "\n".join(
        [
            HEADER,
            row(1, 0, 0, 0, 0, -1, ""),
            row(2, 1, 0, 0, 0, -1, ""),
            row(3, 1, 1, 0, 0, -1, ""),
            row(4, 1, 1, 1, 0, -1, ""),
            row(5, 1, 1, 1, 1, 90, "Hello"),
            row(5, 1, 1, 1, 2, 80, "world"),
            row(4, 1, 1, 2, 0, -1, ""),
            row(5, 1, 1, 2, 1, 70, "again"),
            row(3, 1, 2, 0, 0, -1, ""),
            row(5, 1, 2, 1, 1, 60, "Second"),
            row(5, 2, 1, 1, 1, 100, "Block"),
            row(5, 2, 1, 1, 2, 95, " "),  # Tesseract emits empty words for stray blobs
        ]
    )
    parsed = parse_tsv(tsv + "\n")
    assert parsed.text == "Hello world\nagain\n\nSecond\n\nBlock"
    assert parsed.confidence == pytest.approx((90 + 80 + 70 + 60 + 100) / 5)
    assert parsed.word_count == 5


def test_no_words() -> None:
    parsed = parse_tsv(HEADER + "\n" + row(1, 0, 0, 0, 0, -1, "") + "\n")
    assert parsed.text == ""
    assert parsed.confidence is None


def test_negative_confidence_is_not_averaged() -> None:
    parsed = parse_tsv("\n".join([HEADER, row(5, 1, 1, 1, 1, -1, "x"), row(5, 1, 1, 1, 2, 50, "y")]))
    assert parsed.text == "x y"
    assert parsed.confidence == 50


def test_words_carry_their_boxes_and_their_lines() -> None:
    rows = [
        "4\t1\t1\t1\t1\t0\t10\t20\t300\t40\t-1\t",
        "5\t1\t1\t1\t1\t1\t10\t25\t100\t30\t90\tHello",
        "5\t1\t1\t1\t1\t2\t130\t22\t180\t38\t80\tworld",
        "4\t1\t1\t1\t2\t0\t10\t80\t100\t30\t-1\t",
        "5\t1\t1\t1\t2\t1\t10\t80\t100\t30\t70\tagain",
    ]
    tsv = "\n".join([HEADER, *rows])
    words = parse_tsv(tsv).words
    assert [(w.text, w.left, w.top, w.width, w.height) for w in words] == [
        ("Hello", 10, 25, 100, 30),
        ("world", 130, 22, 180, 38),
        ("again", 10, 80, 100, 30),
    ]
    assert [(w.line_top, w.line_bottom, w.last_in_line) for w in words] == [(20, 60, False), (20, 60, True), (80, 110, True)]
