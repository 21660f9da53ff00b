# PyMuPDF ships only partial annotations: calls into it are untyped.
# mypy: disable-error-code="no-untyped-call"
from __future__ import annotations

import time

import pymupdf
import pytest
from PIL import Image, ImageFile

from service.errors import EncryptedDocument, ImageTooLarge, UnprocessableDocument, UnsupportedMediaType
from service.ocr import CancelToken, PageOptions, count_pages, process_page, sniff_media_type
from tests.unit import ocr_samples


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"%PDF-1.7\n%\xe2\xe3", "application/pdf"),
        (b"\r\n junk from a mail gateway \r\n%PDF-1.4\n", "application/pdf"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image/png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
        (b"II*\x00\x08\x00\x00\x00", "image/tiff"),
        (b"MM\x00*\x00\x00\x00\x08", "image/tiff"),
        (b"", None),
        (b"GIF89a", None),
        (b"PK\x03\x04 a zip file", None),
        (b"hello, this is plain text mentioning PDF", None),
        (b"x" * 1100 + b"%PDF-1.4", None),  # beyond the window PDF readers search
    ],
)
def test_sniff_media_type(head: bytes, expected: str | None) -> None:
    assert sniff_media_type(head) == expected


def test_sniff_media_type_of_generated_documents() -> None:
    image = ocr_samples.scan()
    assert sniff_media_type(ocr_samples.text_pdf()[:64]) == "application/pdf"
    assert sniff_media_type(ocr_samples.image_bytes(image, "PNG")[:64]) == "image/png"
    assert sniff_media_type(ocr_samples.image_bytes(image, "JPEG")[:64]) == "image/jpeg"
    assert sniff_media_type(ocr_samples.multipage_tiff([image])[:64]) == "image/tiff"


def test_count_pages() -> None:
    image = ocr_samples.scan(dpi=72)
    assert count_pages(ocr_samples.text_pdf(pages=3), "application/pdf") == 3
    assert count_pages(ocr_samples.mixed_pdf(), "application/pdf") == 4
    assert count_pages(ocr_samples.image_bytes(image, "PNG"), "image/png") == 1
    assert count_pages(ocr_samples.image_bytes(image, "JPEG"), "image/jpeg") == 1
    assert count_pages(ocr_samples.multipage_tiff([image, image, image]), "image/tiff") == 3


def test_count_pages_accepts_leading_junk_and_owner_only_encryption() -> None:
    assert count_pages(b"junk\r\n" + ocr_samples.text_pdf(), "application/pdf") == 1
    doc = pymupdf.open(stream=ocr_samples.text_pdf(), filetype="pdf")
    aes_256 = pymupdf.PDF_ENCRYPT_AES_256  # type: ignore[attr-defined]
    locked = doc.tobytes(encryption=aes_256, owner_pw="owner", permissions=0)
    assert count_pages(locked, "application/pdf") == 1


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"%PDF-1.4\n",
        b"%PDF-1.4\nthis is not really a pdf at all",
        (  # zero pages
            b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj 2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
            b"trailer<</Root 1 0 R>>\n%%EOF"
        ),
    ],
    ids=["empty", "header-only", "garbage", "zero-pages"],
)
def test_count_pages_rejects_broken_pdfs(data: bytes) -> None:
    with pytest.raises(UnprocessableDocument):
        count_pages(data, "application/pdf")


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_count_pages_rejects_truncated_pdfs(fraction: float) -> None:
    data = ocr_samples.text_pdf(pages=3)
    with pytest.raises(UnprocessableDocument):
        count_pages(data[: int(len(data) * fraction)], "application/pdf")


@pytest.mark.parametrize(("fmt", "media_type"), [("PNG", "image/png"), ("TIFF", "image/tiff")])
def test_a_truncated_image_is_counted_from_its_header_and_refused_when_its_page_is_read(
    fmt: str, media_type: str
) -> None:
    data = ocr_samples.image_bytes(ocr_samples.scan(dpi=72), fmt)[:-4000]
    assert count_pages(data, media_type) == 1
    with pytest.raises(UnprocessableDocument):
        process_page(data, media_type, 0, PageOptions(), CancelToken())


def test_counting_an_images_pages_decodes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The web counts pages: a 16-megapixel frame decoded there cost 100 MB and a third of a second."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a page or an image was decoded")

    monkeypatch.setattr(pymupdf.Document, "load_page", refuse)
    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    frames = [Image.new("L", (4000, 4000), 255) for _ in range(2)]
    assert count_pages(ocr_samples.multipage_tiff(frames), "image/tiff", max_pixels=16_000_000) == 2
    assert count_pages(ocr_samples.image_bytes(frames[0], "PNG"), "image/png", max_pixels=16_000_000) == 1


def test_frames_over_the_renderers_pixel_cap_are_refused_from_their_headers() -> None:
    frames = [Image.new("1", (100, 100)), Image.new("1", (7000, 7000))]
    with pytest.raises(ImageTooLarge):
        count_pages(ocr_samples.multipage_tiff(frames), "image/tiff")  # 49 MP: more than the 40 MP renderer cap
    assert count_pages(ocr_samples.multipage_tiff(frames), "image/tiff", max_pixels=50_000_000) == 2


def test_count_pages_rejects_encrypted_pdfs() -> None:
    with pytest.raises(EncryptedDocument):
        count_pages(ocr_samples.encrypted_pdf(), "application/pdf")


def test_count_pages_rejects_unsupported_media_types() -> None:
    with pytest.raises(UnsupportedMediaType):
        count_pages(b"GIF89a", "image/gif")


def test_count_pages_is_cheap() -> None:
    data = ocr_samples.text_pdf(pages=200)
    started = time.perf_counter()
    assert count_pages(data, "application/pdf") == 200
    assert time.perf_counter() - started < 0.5
