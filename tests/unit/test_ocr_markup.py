from __future__ import annotations

import xml.etree.ElementTree as ET

from service.ocr.markup import escape, printable_word, xml_safe


def test_markup_characters_are_escaped_for_content_and_attributes() -> None:
    text = """<a href="x">&'"""
    assert escape(text) == "&lt;a href=&quot;x&quot;&gt;&amp;&apos;"
    assert ET.fromstring(f'<w title="{escape(text)}">{escape(text)}</w>').attrib["title"] == text


def test_characters_xml_cannot_hold_are_replaced() -> None:
    text = "a\x00b\x08c\x0bd\x1fe\ud800f\ufffeg\uffffh\t\n\ri\U0001f600"
    assert xml_safe(text) == "a\ufffdb\ufffdc\ufffdd\ufffde\ufffdf\ufffdg\ufffdh\t\n\ri\U0001f600"
    ET.fromstring(f"<w>{escape(text)}</w>")


def test_a_word_keeps_no_whitespace_and_nothing_xml_forbids() -> None:
    assert printable_word(" ctrl\x01\x1f\x7f\x85\tin\u00a0side\ufffe ") == "ctrlinside"
    assert printable_word("Привет<&>") == "Привет<&>"
