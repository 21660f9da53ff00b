"""Building a searchable PDF: the original pages with each OCR page's invisible text laid over it."""

# PyMuPDF ships only partial annotations: calls into it are untyped.
# mypy: disable-error-code="no-untyped-call"
from __future__ import annotations

import pymupdf

from service.ocr.document import open_document
from service.ocr.result import PageResult


def searchable_pdf(data: bytes, media_type: str, pages: list[PageResult]) -> bytes:
    """The document as a PDF (images become pages) whose OCR pages carry their invisible text layer,
    so a viewer can search and copy their text. Text-layer pages are left as they are."""
    source = open_document(data, media_type)
    try:
        output = source if source.is_pdf else pymupdf.open("pdf", source.convert_to_pdf())
        try:
            for result in pages:
                if result.source == "ocr" and result.text_pdf:
                    _overlay(output[result.number - 1], result)
            if 0 < len(pages) < output.page_count:
                # A job that read only some pages (`pages=`) gives those pages, as its result does.
                output.select([result.number - 1 for result in pages])
            return bytes(output.tobytes(garbage=3, deflate=True))
        finally:
            if output is not source:
                output.close()
    finally:
        source.close()


def _overlay(page: pymupdf.Page, result: PageResult) -> None:
    assert result.text_pdf is not None
    with pymupdf.open(stream=result.text_pdf, filetype="pdf") as layer:
        # The layer was recognised on the page as shown (its /Rotate applied) and then turned
        # `rotation` degrees clockwise. show_pdf_page draws in unrotated page space and turns its
        # source counter-clockwise, so undo both turns there.
        page.show_pdf_page(
            page.rect * page.derotation_matrix,
            layer,
            0,
            overlay=True,
            rotate=(result.rotation + page.rotation) % 360,
        )
