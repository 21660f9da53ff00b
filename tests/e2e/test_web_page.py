"""The web page at `/`, driven by headless Chromium against the real service: uploads with live progress from
the event feed (never polling), results, downloads, cancel, delete, reload, errors and the API-key flow."""

from __future__ import annotations

import asyncio
import re
import shutil
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import (
    Browser,
    ConsoleMessage,
    FilePayload,
    Locator,
    Page,
    Request,
    Route,
    ViewportSize,
    async_playwright,
    expect,
)

from tests.conftest import ARTIFACTS, RedisServer, Service, run_service
from tests.unit.ocr_samples import cer, scan, scanned_pdf

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = ViewportSize(width=1280, height=900)
PHONE = ViewportSize(width=375, height=812)
JOB_WAIT_MS = 60_000
# GET /jobs and GET /jobs/<id>: the status endpoints the page must never poll.
STATUS_PATH = re.compile(r"/jobs(/[0-9a-f]{32})?/?")
KEY = "key-acme-123456"

# Records every change of a row's progress value and status, in order, as [filename, what, value].
RECORD_ROW_CHANGES = """() => {
  window.rowChanges = [];
  new MutationObserver((records) => {
    for (const record of records) {
      const row = record.target.closest("li.job");
      if (!row) continue;
      const name = row.querySelector(".job-name").textContent;
      const value = record.attributeName === "value" ? record.target.getAttribute("value") : row.dataset.status;
      window.rowChanges.push([name, record.attributeName, value]);
    }
  }).observe(document.getElementById("job-list"), {subtree: true, attributes: true,
                                                   attributeFilter: ["value", "data-status"]});
}"""


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("Chromium is not installed: run scripts/setup --test, which installs it")
    return path


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@dataclass
class Tab:
    """A page in a fresh browser context, with every request it made and every script or CSP error."""

    page: Page
    requests: list[Request] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def gets(self) -> list[str]:
        return [_path(r.url) for r in self.requests if r.method == "GET"]

    def assert_no_polling(self, *, page_loads: int) -> None:
        gets = self.gets()
        polled = [path for path in gets if STATUS_PATH.fullmatch(urlsplit(path).path)]
        assert not polled, f"the page fetched job status instead of following the feed: {polled}"
        job_streams = [path for path in gets if re.fullmatch(r"/jobs/[0-9a-f]{32}/events", urlsplit(path).path)]
        assert not job_streams, f"the page opened per-job streams: {job_streams}"
        repeated = {path: n for path, n in Counter(gets).items() if path.startswith("/jobs/") and n > 1}
        assert not repeated, f"the page fetched the same job URL repeatedly: {repeated}"
        assert gets.count("/events/link") <= page_loads, gets

    def assert_no_errors(self) -> None:
        assert not self.errors, self.errors


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


async def open_tab(browser: Browser, service: Service, viewport: ViewportSize = DESKTOP) -> Tab:
    context = await browser.new_context(viewport=viewport, accept_downloads=True)
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=service.url)
    tab = Tab(await context.new_page())
    tab.page.on("request", lambda request: tab.requests.append(request))
    tab.page.on("pageerror", lambda exc: tab.errors.append(f"page error: {exc}"))

    def on_console(message: ConsoleMessage) -> None:
        # A refused request (401, 415) is logged by Chromium and expected here; script errors and CSP refusals are not.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            tab.errors.append(message.text)

    tab.page.on("console", on_console)
    await tab.page.goto(service.url + "/")
    return tab


def scan_file(directory: Path, lines: list[str], *, pages: int = 1, prefix: str = "scan") -> Path:
    """A scanned PDF of `lines` with a unique name (and unique bytes, so the result cache never answers)."""
    tag = uuid.uuid4().hex[:8]
    path = directory / f"{prefix}-{tag}.pdf"
    path.write_bytes(scanned_pdf([scan([*lines, f"Reference {tag}"]) for _ in range(pages)]))
    return path


def job_row(page: Page, filename: str) -> Locator:
    return page.locator("li.job", has=page.locator(".job-name", has_text=filename))


async def expect_live(page: Page) -> None:
    """The feed is open and its snapshot of the job list is on the page."""
    await expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    await expect(page.locator("#connection-text")).to_have_text("Live")
    await expect(page.locator("#job-list")).to_have_attribute("aria-busy", "false")


async def row_changes(page: Page, filename: str) -> list[tuple[str, str]]:
    changes: list[list[str]] = await page.evaluate("() => window.rowChanges")
    return [(what, value) for name, what, value in changes if name == filename]


async def test_upload_shows_live_progress_then_the_result_and_downloads(
    browser: Browser, live_service: Service, tmp_path: Path
) -> None:
    lines = ["Browsers follow progress over events", "The page never polls for status"]
    document = scan_file(tmp_path, lines, prefix="letter")
    tab = await open_tab(browser, live_service)
    page = tab.page
    await expect_live(page)
    await page.evaluate(RECORD_ROW_CHANGES)

    await page.set_input_files("#file-input", document)
    row = job_row(page, document.name)
    await expect(row).to_have_attribute("data-status", "completed", timeout=JOB_WAIT_MS)
    progress = row.get_by_role("progressbar", name=f"Progress of {document.name}")
    await expect(progress).to_have_attribute("value", "100")
    changes = await row_changes(page, document.name)
    values = [int(v) for what, v in changes if what == "value"]
    assert values[0] < 100 and values[-1] == 100 and values == sorted(values), changes
    statuses = [v for what, v in changes if what == "data-status"]
    assert statuses[0] in ("queued", "running") and statuses[-1] == "completed", changes
    await expect(row.locator(".job-detail")).to_contain_text("1 of 1 page")

    await row.get_by_role("button", name=f"Open result of {document.name}").click()
    dialog = page.get_by_role("dialog", name=document.name)
    await expect(dialog).to_be_visible()
    page_text = dialog.get_by_label("Text of page 1")
    await expect(page_text).to_contain_text("Reference")
    shown = await page_text.text_content() or ""
    assert cer(" ".join(lines), shown.split("Reference")[0]) < 0.1, shown
    facts = dialog.get_by_role("list", name="About page 1")
    await expect(facts).to_contain_text("OCR")
    await expect(facts).to_contain_text("Upright")
    await expect(facts).to_contain_text(re.compile(r"Confidence \d+%"))

    await dialog.get_by_role("button", name="Copy text").click()
    await expect(dialog.get_by_role("status")).to_have_text("Text copied to the clipboard.")
    assert "Reference" in await page.evaluate("() => navigator.clipboard.readText()")

    async with page.expect_download() as text_download:
        await dialog.get_by_role("button", name="Download .txt").click()
    download = await text_download.value
    assert download.suggested_filename == document.stem + ".txt"
    text = Path(await download.path()).read_text()
    assert cer(" ".join(lines), text.split("Reference")[0]) < 0.1, text

    async with page.expect_download() as pdf_download:
        await dialog.get_by_role("button", name="Download searchable PDF").click()
    download = await pdf_download.value
    assert download.suggested_filename == document.stem + ".searchable.pdf"
    assert Path(await download.path()).read_bytes().startswith(b"%PDF")

    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / "web-page-result.png")
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await expect(row.get_by_role("button", name=f"Open result of {document.name}")).to_be_focused()
    await page.screenshot(path=ARTIFACTS / "web-page.png", full_page=True)

    await page.set_viewport_size(PHONE)
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    await page.screenshot(path=ARTIFACTS / "web-page-phone.png", full_page=True)

    tab.assert_no_polling(page_loads=1)
    assert tab.gets().count(f"/jobs/{await row.get_attribute('data-id')}/result") == 1
    tab.assert_no_errors()
    await page.context.close()


async def test_cancel_a_running_job(browser: Browser, live_service: Service, tmp_path: Path) -> None:
    document = scan_file(
        tmp_path, ["A long document to be cancelled", "while its pages are in work"], pages=10, prefix="long"
    )
    tab = await open_tab(browser, live_service)
    page = tab.page
    await expect_live(page)
    await page.evaluate(RECORD_ROW_CHANGES)
    await page.set_input_files("#file-input", document)
    row = job_row(page, document.name)
    await expect(row).to_have_attribute("data-status", "running", timeout=JOB_WAIT_MS)
    # The bar moves page by page: wait for the first pages to be done, then cancel.
    await expect(row.locator("progress")).not_to_have_attribute("value", "0", timeout=JOB_WAIT_MS)

    await row.get_by_role("button", name=f"Cancel {document.name}").click()
    await expect(row).to_have_attribute("data-status", "cancelled", timeout=30_000)
    await expect(row.locator(".badge")).to_have_text("Cancelled")
    await expect(row.get_by_role("button", name=f"Cancel {document.name}")).to_be_hidden()
    await expect(row.get_by_role("button", name=f"Delete {document.name}")).to_be_visible()
    await expect(page.locator("#announcer")).to_contain_text(f"{document.name}: cancelled")
    values = [int(v) for what, v in await row_changes(page, document.name) if what == "value"]
    assert any(0 < v < 100 for v in values), values

    tab.assert_no_polling(page_loads=1)
    tab.assert_no_errors()
    await page.context.close()


async def test_the_job_list_survives_a_reload_and_a_finished_job_can_be_deleted(
    browser: Browser, live_service: Service, tmp_path: Path
) -> None:
    document = scan_file(tmp_path, ["Delete me after reading", "and reload the page"], prefix="receipt")
    tab = await open_tab(browser, live_service)
    page = tab.page
    await expect_live(page)
    await page.set_input_files("#file-input", document)
    row = job_row(page, document.name)
    await expect(row).to_have_attribute("data-status", "completed", timeout=JOB_WAIT_MS)

    await page.reload()
    await expect_live(page)
    await expect(row).to_have_attribute("data-status", "completed")
    await expect(row.locator(".job-message")).to_have_text(re.compile(r"\S"))

    await row.get_by_role("button", name=f"Delete {document.name}").click()
    await expect(row).to_have_count(0)
    await expect(page.locator("#announcer")).to_have_text(f"{document.name} deleted.")
    await page.reload()
    await expect_live(page)
    await expect(row).to_have_count(0)

    deletes = [_path(r.url) for r in tab.requests if r.method == "DELETE"]
    assert len(deletes) == 1 and STATUS_PATH.fullmatch(deletes[0]), deletes
    tab.assert_no_polling(page_loads=3)
    tab.assert_no_errors()
    await page.context.close()


async def test_refused_uploads_show_the_servers_message(
    browser: Browser, live_service: Service, tmp_path: Path
) -> None:
    tab = await open_tab(browser, live_service)
    page = tab.page
    await expect_live(page)
    not_a_document = tmp_path / f"notes-{uuid.uuid4().hex[:8]}.pdf"
    not_a_document.write_text("plain text, whatever the name says")
    await page.set_input_files("#file-input", not_a_document)
    row = job_row(page, not_a_document.name)
    await expect(row).to_have_attribute("data-status", "rejected")
    await expect(row.locator(".job-error")).to_have_text(
        "The document is not a PDF, PNG, JPEG or TIFF (judged from its bytes)."
    )
    await row.get_by_role("button", name=f"Dismiss {not_a_document.name}").click()
    await expect(row).to_have_count(0)

    await page.get_by_label("Language").fill("xyz")
    document = scan_file(tmp_path, ["Unknown languages are refused"], prefix="options")
    await page.set_input_files("#file-input", document)
    await expect(job_row(page, document.name).locator(".job-error")).to_contain_text("Language xyz is not installed")

    # Values the form itself knows to be wrong never leave the page.
    await page.get_by_label("Resolution (dpi)").fill("5000")
    posts = sum(r.method == "POST" for r in tab.requests)
    await page.set_input_files("#file-input", document)
    await expect(page.locator("#upload-error")).to_contain_text("Resolution (dpi)")
    assert sum(r.method == "POST" for r in tab.requests) == posts
    tab.assert_no_errors()
    await page.context.close()


async def test_a_server_with_api_keys_asks_for_one(browser: Browser, redis_server: RedisServer, tmp_path: Path) -> None:
    with run_service(redis_server, API_KEYS=f"acme:{KEY}", SECRET_KEY="s" * 32) as service:
        tab = await open_tab(browser, service)
        page = tab.page
        await expect(page.locator("#connection-text")).to_have_text("API key needed")
        await expect(page.get_by_role("heading", name="Upload documents")).to_be_hidden()
        key_field = page.get_by_label("API key", exact=True)
        await expect(key_field).to_be_focused()

        await key_field.fill("not-the-key")
        await page.get_by_role("button", name="Use key").click()
        await expect(page.locator("#key-error")).to_have_text("That API key is not valid.")
        await key_field.fill(KEY)
        await key_field.press("Enter")
        await expect_live(page)
        await expect(page.get_by_role("heading", name="API key required")).to_be_hidden()
        assert await page.evaluate("() => sessionStorage.getItem('ocr-service.api-key')") == KEY

        document = scan_file(tmp_path, ["Tenants upload with their key"], prefix="keyed")
        await page.set_input_files("#file-input", document)
        row = job_row(page, document.name)
        await expect(row).to_have_attribute("data-status", "completed", timeout=JOB_WAIT_MS)
        await row.get_by_role("button", name=f"Open result of {document.name}").click()
        await expect(page.get_by_label("Text of page 1")).to_contain_text("Tenants upload")
        await page.keyboard.press("Escape")

        # The key lasts for the tab's session: a reload needs no new one.
        await page.reload()
        await expect_live(page)
        await expect(row).to_have_attribute("data-status", "completed")

        headers: list[dict[str, Any]] = [await r.all_headers() for r in tab.requests]
        sent_key = [r for r, h in zip(tab.requests, headers) if h.get("authorization") == f"Bearer {KEY}"]
        assert {_path(r.url).split("?")[0] for r in sent_key} >= {"/events/link", "/jobs"}
        assert not [r.url for r in tab.requests if KEY in r.url], "an API key never goes into a URL"
        tab.assert_no_polling(page_loads=4)
        tab.assert_no_errors()
        await page.context.close()


# Counts rows added to and removed from the job list (direct children only), and the most it ever held.
RECORD_ROW_TURNOVER = """() => {
  const list = document.getElementById("job-list");
  window.rowTurnover = {added: 0, removed: 0, most: list.children.length};
  new MutationObserver((records) => {
    for (const record of records) {
      window.rowTurnover.added += record.addedNodes.length;
      window.rowTurnover.removed += record.removedNodes.length;
    }
    window.rowTurnover.most = Math.max(window.rowTurnover.most, list.children.length);
  }).observe(list, {childList: true});
}"""


async def test_files_sharing_a_name_or_cleaned_by_the_server_each_keep_their_own_row(
    browser: Browser, live_service: Service, tmp_path: Path
) -> None:
    # Two different documents both called twin.pdf, and one whose name the server cleans (the path and the
    # control characters go): none can be told from its job by the file name. Each is told apart by a word
    # typeset in it (plain words, which OCR reads reliably); the reference only makes its bytes unique.
    words = ["Harbour", "Meadow", "Lantern"]

    def payload(name: str, word: str, pages: int = 1) -> FilePayload:
        lines = [f"The {word} document", f"Reference {uuid.uuid4().hex[:8]}"]
        return FilePayload(name=name, mimeType="application/pdf", buffer=scanned_pdf([scan(lines)] * pages))

    files = [
        payload("twin.pdf", words[0]),
        payload("twin.pdf", words[1], pages=2),
        payload("scans\\2026/\x07cleaned\x1f.pdf", words[2]),
    ]
    tab = await open_tab(browser, live_service)
    page = tab.page
    await expect_live(page)
    before = await page.locator("#job-list > li.job").count()
    await page.evaluate(RECORD_ROW_TURNOVER)

    await page.set_input_files("#file-input", files)
    # Each upload's row is put on top, the last file first, and stays where it is as its job goes on.
    rows = [page.locator("#job-list > li.job").nth(i) for i in range(3)]
    for row in rows:
        await expect(row).to_have_attribute("data-status", "completed", timeout=JOB_WAIT_MS)
    await expect(page.locator("#job-list > li.job")).to_have_count(before + 3)
    turnover = await page.evaluate("() => window.rowTurnover")
    assert turnover == {"added": 3, "removed": 0, "most": before + 3}, (
        f"the uploads' rows were not the rows of their jobs: {turnover}"
    )
    await expect(rows[0].locator(".job-name")).to_have_text("cleaned.pdf")
    await expect(rows[1].locator(".job-name")).to_have_text("twin.pdf")
    await expect(rows[2].locator(".job-name")).to_have_text("twin.pdf")
    await expect(rows[0].locator(".job-detail")).to_contain_text("1 of 1 page")
    await expect(rows[1].locator(".job-detail")).to_contain_text("2 of 2 pages")
    await expect(rows[2].locator(".job-detail")).to_contain_text("1 of 1 page")
    ids = [await row.get_attribute("data-id") for row in rows]
    assert len(set(ids)) == 3 and all(ids), ids

    # Each row opens its own document's result.
    expected = [("cleaned.pdf", words[2], 1), ("twin.pdf", words[1], 2), ("twin.pdf", words[0], 1)]
    for row, (name, word, pages) in zip(rows, expected):
        await row.get_by_role("button", name=f"Open result of {name}").click()
        dialog = page.get_by_role("dialog", name=name)
        await expect(dialog.get_by_label("Text of page 1")).to_contain_text(word)
        await expect(dialog.locator("#result-summary")).to_contain_text(f"{pages} page")
        shown = await dialog.locator(".page-text").all_text_contents()
        assert len(shown) == pages and all(word in text for text in shown), shown
        assert not any(other in text for text in shown for other in words if other != word), shown
        await page.keyboard.press("Escape")
        await expect(dialog).to_be_hidden()

    # After a reload the feed alone rebuilds the list: still one row for each job.
    await page.reload()
    await expect_live(page)
    for job_id in ids:
        await expect(page.locator(f'#job-list > li.job[data-id="{job_id}"]')).to_have_count(1)
    await expect(job_row(page, "twin.pdf")).to_have_count(2)

    tab.assert_no_polling(page_loads=2)
    tab.assert_no_errors()
    await page.context.close()


async def test_an_upload_keeps_its_row_when_the_feed_tells_of_its_job_before_the_answer(
    browser: Browser, live_service: Service, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    tab = await open_tab(browser, live_service)
    page = tab.page
    await expect_live(page)
    await page.evaluate(RECORD_ROW_TURNOVER)
    # The page's POST /jobs is answered late, so the feed's news of the job always comes first. Chromium does
    # not hand a File's bytes to an intercepted request, so the same upload is made here and its answer held.
    delay_s = {"value": 2.0}
    uploading: dict[str, Path] = {}
    sent = asyncio.Event()

    async def answer_late(route: Route) -> None:
        document = uploading["file"]
        answer = await client.post("/jobs", files={"file": (document.name, document.read_bytes(), "application/pdf")})
        sent.set()
        await asyncio.sleep(delay_s["value"])
        await route.fulfill(status=answer.status_code, content_type="application/json", body=answer.content)

    await page.route(re.compile(r".*/jobs"), answer_late)
    mine = scan_file(tmp_path, ["Uploaded from the page"], prefix="mine")
    uploading["file"] = mine
    await page.set_input_files("#file-input", mine)
    await sent.wait()
    # Meanwhile a job comes from elsewhere (the API), its feed news amid the page's wait for its answer.
    elsewhere = scan_file(tmp_path, ["Sent over the API"], prefix="elsewhere")
    posted = await client.post("/jobs", files={"file": (elsewhere.name, elsewhere.read_bytes(), "application/pdf")})
    assert posted.status_code == 202, posted.text

    for name in (mine.name, elsewhere.name):
        await expect(job_row(page, name)).to_have_attribute("data-status", "completed", timeout=JOB_WAIT_MS)
    turnover = await page.evaluate("() => window.rowTurnover")
    assert (turnover["added"], turnover["removed"]) == (2, 0), turnover
    await expect(job_row(page, elsewhere.name)).to_have_attribute("data-id", posted.json()["id"])

    # An answer later than the page waits for: the job shows at once in a row of its own, and the upload's
    # row goes when the answer comes, leaving one row for the job.
    delay_s["value"] = 5.0
    late = scan_file(tmp_path, ["An answer that comes late"], prefix="late")
    uploading["file"] = late
    await page.set_input_files("#file-input", late)
    shown = page.locator("li.job[data-id]", has=page.locator(".job-name", has_text=late.name))
    await expect(shown).to_have_attribute("data-status", "completed", timeout=JOB_WAIT_MS)
    await expect(page.locator("#job-list > li.pending")).to_have_count(0, timeout=10_000)
    await expect(job_row(page, late.name)).to_have_count(1)

    tab.assert_no_polling(page_loads=1)
    tab.assert_no_errors()
    await page.context.close()


async def test_a_running_job_shows_its_pages_as_they_are_done(
    browser: Browser, live_service: Service, tmp_path: Path
) -> None:
    # Five of six pages on a worker that reads two at a time: the first are done seconds before the last.
    document = scan_file(tmp_path, ["Pages appear while the job runs"], pages=6, prefix="live")
    tab = await open_tab(browser, live_service)
    page = tab.page
    await expect_live(page)
    await page.get_by_role("textbox", name="Pages").fill("1-3, 5-6")
    await page.set_input_files("#file-input", document)
    row = job_row(page, document.name)
    show = row.get_by_role("button", name=f"Show pages of {document.name}")
    await expect(show).to_be_visible(timeout=JOB_WAIT_MS)
    await show.click()
    dialog = page.get_by_role("dialog", name=document.name)
    await expect(dialog.get_by_label("Text of page 1")).to_contain_text("Reference", timeout=JOB_WAIT_MS)

    # The first page is readable while the job still runs.
    job_id = await row.get_attribute("data-id")
    async with httpx.AsyncClient(base_url=live_service.url, timeout=10) as http:
        job = (await http.get(f"/jobs/{job_id}")).json()
    assert job["status"] == "running" and job["pages_done"] < 5 and job["options"]["pages"] == "1-3,5-6", job
    await expect(dialog.get_by_role("button", name="Copy text")).to_be_disabled()
    await expect(dialog.get_by_role("status")).to_contain_text("pages appear here as they are done")

    # Then every selected page, in page order with its own number, and the whole result with its
    # downloads once it completes.
    await expect(row).to_have_attribute("data-status", "completed", timeout=JOB_WAIT_MS)
    await expect(dialog.get_by_role("button", name="Copy text")).to_be_enabled(timeout=JOB_WAIT_MS)
    numbers = [await item.get_attribute("data-number") for item in await dialog.locator("li.page").all()]
    assert numbers == ["1", "2", "3", "5", "6"]
    await expect(row.locator(".job-detail")).to_contain_text("5 of 5 pages")
    for label, ending, marker in (
        ("Download hOCR (words with their boxes)", ".hocr", '"ocrx_word"'),
        ("Download ALTO XML (words with their boxes)", ".alto.xml", "<String "),
        ("Download the words as JSON", ".words.json", '"words":'),
    ):
        async with page.expect_download() as downloaded:
            await dialog.get_by_role("button", name=label).click()
        download = await downloaded.value
        assert download.suggested_filename == document.stem + ending
        assert marker in Path(await download.path()).read_text(), label
    await page.keyboard.press("Escape")
    await expect(row.get_by_role("button", name=f"Open result of {document.name}")).to_be_visible()
    streams = [path for path in tab.gets() if urlsplit(path).path == f"/jobs/{job_id}/events"]
    assert len(streams) == 1, f"one stream for the job's pages, closed with its end: {streams}"
    tab.assert_no_errors()
    await page.context.close()
