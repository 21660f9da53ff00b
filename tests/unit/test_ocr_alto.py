from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from service.ocr import PageResult, alto
from tests.unit.word_pages import ocr_page, text_layer_page

NS = "{http://www.loc.gov/standards/alto/ns-v4#}"


def document(pages: list[PageResult], unit: str = "inch1200", scale: float = 1200 / 72) -> ET.Element:
    body = alto.head(unit=unit, filename='scan "<1>".pdf', system="test")
    body += "".join(alto.page(page, scale=scale) for page in pages) + alto.tail()
    return ET.fromstring(body.encode())


def position(element: ET.Element) -> list[float]:
    return [float(element.get(name, "nan")) for name in ("HPOS", "VPOS", "WIDTH", "HEIGHT")]


def test_every_page_in_order_with_the_words_of_detail_words() -> None:
    pages = [text_layer_page(1), ocr_page(2)]
    root = document(pages)
    assert root.tag == f"{NS}alto"
    assert root.findtext(f"{NS}Description/{NS}MeasurementUnit") == "inch1200"
    assert root.findtext(f"{NS}Description/{NS}sourceImageInformation/{NS}fileName") == 'scan "<1>".pdf'
    found = root.findall(f"{NS}Layout/{NS}Page")
    assert [p.get("PHYSICAL_IMG_NR") for p in found] == ["1", "2"]
    for element, page in zip(found, pages, strict=True):
        assert (element.get("WIDTH"), element.get("HEIGHT")) == ("10200", "13200")
        (space,) = element.findall(f"{NS}PrintSpace")
        words = page.to_dict(with_words=True)["words"]
        strings = list(space.iter(f"{NS}String"))
        assert [s.get("CONTENT") for s in strings] == [w["text"] for w in words]
        for string, word in zip(strings, words, strict=True):
            x0, y0, x1, y1 = (v * 1200 / 72 for v in word["bbox"])
            assert position(string) == pytest.approx([x0, y0, x1 - x0, y1 - y0], abs=0.02)
            expected = None if word["confidence"] is None else word["confidence"] / 100
            assert (None if string.get("WC") is None else float(string.get("WC", ""))) == expected


def test_blocks_lines_and_spaces() -> None:
    root = document([text_layer_page(1)])
    blocks = root.findall(f".//{NS}TextBlock")
    assert len(blocks) == 2
    lines = root.findall(f".//{NS}TextLine")
    assert [len(line.findall(f"{NS}String")) for line in lines] == [3, 3, 2]
    assert [len(line.findall(f"{NS}SP")) for line in lines] == [2, 2, 1]
    ids = [e.get("ID") for e in root.iter() if e.get("ID")]
    assert len(ids) == len(set(ids))
    for line in lines:
        lx, ly, lw, lh = position(line)
        for string in line.findall(f"{NS}String"):
            x, y, w, h = position(string)
            assert lx <= x and x + w <= lx + lw + 0.01 and ly <= y and y + h <= ly + lh + 0.01


def test_hostile_text_survives_as_content() -> None:
    contents = [s.get("CONTENT") for s in document([text_layer_page(1)]).iter(f"{NS}String")]
    assert contents == ["<b>", "&amp;", '"quoted"', "it's", "Привет", "日本語", "a]]>b", "ctrldel"]


def test_units_follow_the_document() -> None:
    assert alto.units("application/pdf") == ("inch1200", 1200 / 72)
    assert alto.units("image/tiff") == ("pixel", 1.0)
