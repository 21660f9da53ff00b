from __future__ import annotations

import pytest

from service.api.uploads import clean_filename, parse_options
from service.errors import BadRequest

LANGS = frozenset({"eng", "deu"})


def test_defaults() -> None:
    assert parse_options({}, LANGS) == ({"lang": "eng", "dpi": 300, "force_ocr": False, "priority": "normal"}, None)


def test_valid_options() -> None:
    options, webhook = parse_options(
        {"lang": "eng+deu", "dpi": "72", "force_ocr": "true", "webhook_url": "https://hooks.example/x", "priority": "low"},
        LANGS,
    )
    assert options == {"lang": "eng+deu", "dpi": 72, "force_ocr": True, "priority": "low"}
    assert webhook == "https://hooks.example/x"


@pytest.mark.parametrize(
    "fields",
    [
        {"dpi": "71"}, {"dpi": "601"}, {"dpi": "3e2"}, {"dpi": "-1"}, {"lang": "fra"}, {"lang": "eng+"},
        {"lang": "../eng"}, {"force_ocr": "2"}, {"priority": "high"}, {"priority": "LOW"}, {"webhook_url": "ftp://x"}, {"webhook_url": "file:///etc/passwd"},
    ],
)
def test_out_of_range_or_malformed_options_are_400(fields: dict[str, str]) -> None:
    with pytest.raises(BadRequest):
        parse_options(fields, LANGS)


def test_an_uninstalled_language_names_the_installed_ones() -> None:
    with pytest.raises(BadRequest, match="fra is not installed; installed: deu, eng"):
        parse_options({"lang": "eng+fra"}, LANGS)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("scan.pdf", "scan.pdf"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\scan.pdf", "scan.pdf"),
        ("bad\x00na\x1bme\n.pdf", "badname.pdf"),
        ("", "document"),
        ("..", "document"),
        ("x" * 400, "x" * 255),
    ],
)
def test_filenames_lose_paths_and_control_characters(raw: str, clean: str) -> None:
    assert clean_filename(raw) == clean


@pytest.mark.parametrize(
    "fields",
    [
        {"dpi": "²"}, {"dpi": "٣٠٠"}, {"dpi": "9" * 5000}, {"force_ocr": "\ud800"},
        {"webhook_url": "http://hooks.invalid:99999/"}, {"webhook_url": "http://[::1/"}, {"webhook_url": "http://[zz]/"},
        {"webhook_url": "http://user:pw@hooks.invalid/"}, {"webhook_url": "http://hooks.invalid/\ud800"},
    ],
)
def test_hostile_options_are_400_not_crashes(fields: dict[str, str]) -> None:
    with pytest.raises(BadRequest):
        parse_options(fields, LANGS)


def test_the_webhook_url_is_kept_normalised() -> None:
    _, webhook = parse_options({"webhook_url": " HTTPS://Hooks.Example:0443/x#frag "}, LANGS)
    assert webhook == "https://hooks.example:443/x"
