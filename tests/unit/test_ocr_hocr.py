from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from service.ocr import PageResult, hocr
from tests.unit.word_pages import ocr_page, text_layer_page

XHTML = "{http://www.w3.org/1999/xhtml}"


def document(pages: list[PageResult], scale: float = 300 / 72) -> ET.Element:
    body = hocr.head(pages=len(pages), system="test <system>")
    body += "".join(hocr.page(page, scale=scale, scan_res=300) for page in pages) + hocr.tail()
    return ET.fromstring(body.encode())  # well-formed XML, or this raises


def by_class(root: ET.Element, name: str) -> list[ET.Element]:
    return [e for e in root.iter() if e.get("class") == name]


def bbox(element: ET.Element) -> list[int]:
    match = re.search(r"bbox (\d+) (\d+) (\d+) (\d+)", element.get("title", ""))
    assert match, element.attrib
    return [int(v) for v in match.groups()]


def test_every_page_in_order_with_the_words_of_detail_words() -> None:
    pages = [text_layer_page(1), ocr_page(2)]
    root = document(pages)
    assert root.tag == f"{XHTML}html"
    metas = {m.get("name"): m.get("content") for m in root.iter(f"{XHTML}meta") if m.get("name")}
    assert metas["ocr-capabilities"] == "ocr_page ocr_carea ocr_par ocr_line ocrx_word ocrp_wconf"
    assert metas["ocr-system"] == "test <system>" and metas["ocr-number-of-pages"] == "2"
    found = by_class(root, "ocr_page")
    assert [p.get("id") for p in found] == ["page_1", "page_2"]
    for element, page in zip(found, pages, strict=True):
        assert element.get("title") == f"bbox 0 0 2550 3300; ppageno {page.number - 1}; scan_res 300 300"
        words = page.to_dict(with_words=True)["words"]
        spans = by_class(element, "ocrx_word")
        assert [s.text for s in spans] == [w["text"] for w in words]
        assert [bbox(s) for s in spans] == [[round(v * 300 / 72) for v in w["bbox"]] for w in words]
        confidences = [re.search(r"x_wconf (\d+)", s.get("title", "")) for s in spans]
        assert [int(m.group(1)) if m else None for m in confidences] == [w["confidence"] for w in words]


def test_elements_nest_as_hocr_says_and_hold_what_they_contain() -> None:
    root = document([text_layer_page(1), ocr_page(2)])
    ids = [e.get("id") for e in root.iter() if e.get("id")]
    assert len(ids) == len(set(ids)), "ids are unique across pages"
    for page in by_class(root, "ocr_page"):
        assert by_class(page, "ocr_carea") and all(e.tag == f"{XHTML}div" for e in by_class(page, "ocr_carea"))
        for area in by_class(page, "ocr_carea"):
            for par in by_class(area, "ocr_par"):
                assert par.tag == f"{XHTML}p"
                x0, y0, x1, y1 = bbox(area)
                for line in by_class(par, "ocr_line"):
                    assert line.tag == f"{XHTML}span"
                    lx0, ly0, lx1, ly1 = bbox(line)
                    assert x0 <= lx0 <= lx1 <= x1 and y0 <= ly0 <= ly1 <= y1
                    for word in by_class(line, "ocrx_word"):
                        wx0, wy0, wx1, wy1 = bbox(word)
                        assert lx0 <= wx0 <= wx1 <= lx1 and ly0 <= wy0 <= wy1 <= ly1


def test_hostile_text_is_escaped_and_xml_forbidden_characters_never_appear() -> None:
    root = document([text_layer_page(1)])
    texts = [s.text for s in by_class(root, "ocrx_word")]
    assert texts == ["<b>", "&amp;", '"quoted"', "it's", "Привет", "日本語", "a]]>b", "ctrldel"]


def test_an_image_document_is_in_its_own_pixels() -> None:
    assert hocr.units("image/png", 300) == (1.0, None)
    assert hocr.units("application/pdf", 200) == (200 / 72, 200)
    page = hocr.page(ocr_page(1), scale=1.0, scan_res=None)
    assert 'title="bbox 0 0 612 792; ppageno 0"' in page
