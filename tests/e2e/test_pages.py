"""Pages while the job runs, word geometry, hOCR and ALTO, end to end over a real worker."""

# PyMuPDF ships only partial annotations: calls into it are untyped.
# mypy: disable-error-code="no-untyped-call"
from __future__ import annotations

import asyncio
import re
import xml.etree.ElementTree as ET
from typing import Any

import httpx
import pymupdf
import pytest

from tests.e2e.test_api import submit, wait_for_status
from tests.unit.ocr_samples import LINES, scan, scanned_pdf, text_pdf

XHTML = "{http://www.w3.org/1999/xhtml}"
ALTO = "{http://www.loc.gov/standards/alto/ns-v4#}"


def text_then_scans(scans: int) -> bytes:
    """A text-layer page (read in a millisecond) followed by `scans` scanned pages (about a second each)."""
    doc = pymupdf.open(stream=text_pdf(lines=["The first page is read at once"]), filetype="pdf")
    doc.insert_pdf(pymupdf.open(stream=scanned_pdf([scan(LINES) for _ in range(scans)]), filetype="pdf"))
    return bytes(doc.tobytes())


def text_and_turned_scan() -> bytes:
    """Page 1 a text layer, page 2 a scan turned 90 degrees clockwise."""
    doc = pymupdf.open(stream=text_pdf(lines=LINES[:3]), filetype="pdf")
    doc.insert_pdf(pymupdf.open(stream=scanned_pdf([scan(LINES[3:], rotate=90)]), filetype="pdf"))
    return bytes(doc.tobytes())


def assert_words_inside(page: dict[str, Any]) -> None:
    assert page["words"], page["number"]
    for word in page["words"]:
        x0, y0, x1, y1 = word["bbox"]
        assert 0 <= x0 < x1 <= page["width"] and 0 <= y0 < y1 <= page["height"], word


@pytest.fixture(scope="module")
async def finished(live_service: Any) -> dict[str, Any]:
    """A completed two-page job (a text layer, a turned scan) and its result with words."""
    async with httpx.AsyncClient(base_url=live_service.url, timeout=30) as client:
        job = (await submit(client, text_and_turned_scan(), name="two <pages>.pdf")).json()
        assert (await wait_for_status(client, job, {"completed", "failed"}))["status"] == "completed"
        result = await client.get(f"/jobs/{job['id']}/result", params={"detail": "words"})
        assert result.status_code == 200
        return {"job": job, "result": result.json()}


async def test_pages_are_served_while_the_job_runs(client: httpx.AsyncClient) -> None:
    job = (await submit(client, text_then_scans(3))).json()
    async with asyncio.timeout(60):
        while True:
            listing = (await client.get(f"/jobs/{job['id']}/pages")).json()
            if listing["pages"]:
                break
            await asyncio.sleep(0.05)
    # Seen before the job ended: the scans take seconds, the text layer a millisecond.
    assert listing["pages_total"] == 4 and 1 <= listing["pages_done"] < 4, listing
    assert listing["pages"][0]["number"] == 1 and listing["pages"][0]["text"] == "The first page is read at once"
    assert (await client.get(f"/jobs/{job['id']}")).json()["status"] == "running"
    page = await client.get(f"/jobs/{job['id']}/pages/1")
    assert page.status_code == 200 and page.json() == listing["pages"][0]
    # Done with it: cancelled, the last scan is never read, and its page is not ready; page 1 stays.
    assert (await client.delete(f"/jobs/{job['id']}")).status_code == 202
    await wait_for_status(client, job, {"cancelled", "completed"})
    missing = await client.get(f"/jobs/{job['id']}/pages/4")
    assert missing.status_code == 409 and missing.json()["error"]["code"] == "not_ready"
    assert missing.json()["job"]["id"] == job["id"]
    assert (await client.get(f"/jobs/{job['id']}/pages/1")).status_code == 200


async def test_pages_after_and_words_of_every_page(client: httpx.AsyncClient, finished: dict[str, Any]) -> None:
    job_id, result = finished["job"]["id"], finished["result"]
    plain = (await client.get(f"/jobs/{job_id}/result")).json()
    assert all("words" not in page for page in plain["pages"])
    assert [p | {"words": None} for p in plain["pages"]] == [p | {"words": None} for p in result["pages"]]
    listing = (await client.get(f"/jobs/{job_id}/pages", params={"after": "1", "detail": "words"})).json()
    assert listing == {"pages": result["pages"][1:], "pages_total": 2, "pages_done": 2}
    limited = (await client.get(f"/jobs/{job_id}/pages", params={"limit": "1"})).json()
    assert [p["number"] for p in limited["pages"]] == [1]
    for page in result["pages"]:
        one = await client.get(f"/jobs/{job_id}/pages/{page['number']}", params={"detail": "words"})
        assert one.json() == page
        assert [w["text"] for w in page["words"]] == page["text"].split()
        assert_words_inside(page)


async def test_a_text_layer_page_gives_its_words(finished: dict[str, Any]) -> None:
    first = finished["result"]["pages"][0]
    assert first["source"] == "text-layer"
    assert [w["text"] for w in first["words"]] == " ".join(LINES[:3]).split()
    assert {w["confidence"] for w in first["words"]} == {None}
    assert [w["line"] for w in first["words"]][-1] == 3
    with pymupdf.open(stream=text_pdf(lines=LINES[:3]), filetype="pdf") as doc:
        expected = [[round(v, 1) for v in w[:4]] for w in doc[0].get_text("words")]
    assert [[round(v, 1) for v in w["bbox"]] for w in first["words"]] == expected


async def test_a_turned_scan_has_its_boxes_on_the_upright_page(finished: dict[str, Any]) -> None:
    second = finished["result"]["pages"][1]
    assert (second["source"], second["rotation"]) == ("ocr", 270)
    assert second["width"] > second["height"], "the upright page is landscape, as it was typeset"
    assert all(isinstance(w["confidence"], int) for w in second["words"])
    # Read upright, lines run across the page: words are wider than tall, and lines go down the page.
    long_words = [w for w in second["words"] if len(w["text"]) >= 5]
    assert all(w["bbox"][2] - w["bbox"][0] > w["bbox"][3] - w["bbox"][1] for w in long_words)
    tops = [min(w["bbox"][1] for w in second["words"] if w["line"] == n) for n in (1, 2, 3)]
    assert tops == sorted(tops)


async def test_hocr_and_alto_carry_the_words_of_detail_words(
    client: httpx.AsyncClient, finished: dict[str, Any]
) -> None:
    job, result = finished["job"], finished["result"]
    dpi = job["options"]["dpi"]
    hocr = await client.get(f"/jobs/{job['id']}/result", params={"format": "hocr"})
    assert hocr.status_code == 200 and hocr.headers["content-type"].startswith("application/xhtml+xml")
    assert "content-length" not in hocr.headers, "streamed from the pages"
    root = ET.fromstring(hocr.content)
    pages = [e for e in root.iter(f"{XHTML}div") if e.get("class") == "ocr_page"]
    assert len(pages) == 2
    for element, page in zip(pages, result["pages"], strict=True):
        spans = [e for e in element.iter(f"{XHTML}span") if e.get("class") == "ocrx_word"]
        assert [s.text for s in spans] == [w["text"] for w in page["words"]]
        boxes = [[int(v) for v in re.findall(r"\d+", s.get("title", "").split(";")[0])] for s in spans]
        # Whole pixels at the job's dpi (a half-pixel may round either way).
        expected = [[v * dpi / 72 for v in w["bbox"]] for w in page["words"]]
        assert all(b == pytest.approx(e, abs=1) for b, e in zip(boxes, expected, strict=True))

    alto = await client.get(f"/jobs/{job['id']}/result", params={"format": "alto"})
    assert alto.status_code == 200 and alto.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(alto.content)
    assert root.findtext(f"{ALTO}Description/{ALTO}MeasurementUnit") == "inch1200"
    assert root.findtext(f".//{ALTO}fileName") == "two <pages>.pdf"
    pages = root.findall(f"{ALTO}Layout/{ALTO}Page")
    assert len(pages) == 2
    for element, page in zip(pages, result["pages"], strict=True):
        strings = list(element.iter(f"{ALTO}String"))
        assert [s.get("CONTENT") for s in strings] == [w["text"] for w in page["words"]]
        for string, word in zip(strings, page["words"], strict=True):
            assert float(string.get("HPOS", "")) == pytest.approx(word["bbox"][0] * 1200 / 72, abs=0.01)
            assert float(string.get("VPOS", "")) == pytest.approx(word["bbox"][1] * 1200 / 72, abs=0.01)


async def test_bad_values_are_400_and_pages_the_job_has_not_are_404(
    client: httpx.AsyncClient, finished: dict[str, Any]
) -> None:
    job_id = finished["job"]["id"]
    for path, params in [
        (f"/jobs/{job_id}/result", {"detail": "foo"}),
        (f"/jobs/{job_id}/result", {"format": "xyz"}),
        (f"/jobs/{job_id}/pages", {"detail": "all"}),
        (f"/jobs/{job_id}/pages", {"after": "-1"}),
        (f"/jobs/{job_id}/pages", {"after": "one"}),
        (f"/jobs/{job_id}/pages", {"limit": "0"}),
        (f"/jobs/{job_id}/pages/0", {}),
        (f"/jobs/{job_id}/pages/abc", {}),
        (f"/jobs/{job_id}/pages/1", {"detail": ""}),
    ]:
        response = await client.get(path, params=params)
        assert response.status_code == 400, (path, params, response.text)
        assert response.json()["error"]["code"] == "bad_request" and response.json()["error"]["message"]
    for path in (f"/jobs/{job_id}/pages/3", f"/jobs/{'0' * 32}/pages/1", f"/jobs/{'0' * 32}/pages"):
        response = await client.get(path)
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found", path
