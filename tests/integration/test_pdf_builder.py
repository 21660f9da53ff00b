"""The web's searchable-PDF builder: a child process per build, bounded in time, never a 500."""

from __future__ import annotations

import pytest

from service.errors import DocumentError, UnprocessableDocument
from service.jobs.pdf_builder import PdfBuilder
from tests.unit.ocr_samples import text_pdf

PDF = "application/pdf"


async def test_a_build_comes_back_from_its_child() -> None:
    builder = PdfBuilder(timeout_s=60, memory_bytes=2 * 1024**3)
    async with builder.turn():
        pdf = await builder.build(text_pdf(pages=2), PDF, [])
    assert pdf.startswith(b"%PDF")


async def test_a_document_that_cannot_be_built_is_a_document_error() -> None:
    builder = PdfBuilder(timeout_s=60, memory_bytes=2 * 1024**3)
    with pytest.raises(DocumentError, match="cannot be opened"):
        await builder.build(b"%PDF-1.4\nthis is not really a pdf at all", PDF, [])


async def test_a_build_past_its_time_is_stopped() -> None:
    builder = PdfBuilder(timeout_s=0.01, memory_bytes=2 * 1024**3)
    with pytest.raises(UnprocessableDocument, match="longer than"):
        await builder.build(text_pdf(pages=100), PDF, [])
