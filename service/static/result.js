// The result dialog: one job's pages, with copy and downloads. `view` is what the dialog shows now, so that
// an answer arriving after the person moved on to another job (or closed the dialog) is dropped.

// A job still running shows its pages as they are done (live.js), then its whole result once it completes.

import { api, jobUrl, resultUrl } from "./api.js";
import { followPages } from "./live.js";
import { ui } from "./page.js";

// `shown` maps page numbers to their items while pages arrive; `stop` ends following a running job.
const view = { id: "", job: null, result: null, opener: null, shown: new Map(), stop: null };

// Every download: the button, what the URL asks for, and the file name's ending.
const DOWNLOADS = [
  [ui.downloadText, "?format=text", ".txt"],
  [ui.downloadPdf, "?format=pdf", ".searchable.pdf"],
  [ui.downloadHocr, "?format=hocr", ".hocr"],
  [ui.downloadAlto, "?format=alto", ".alto.xml"],
  [ui.downloadWords, "?detail=words", ".words.json"],
];

function setResultButtons(enabled) {
  for (const button of [ui.copyText, ...DOWNLOADS.map(([button]) => button)]) button.disabled = !enabled;
}

function pageItem(page) {
  const item = document.createElement("li");
  item.className = "page";
  const head = document.createElement("div");
  head.className = "page-head";
  const title = document.createElement("h3");
  title.textContent = "Page " + page.number;
  const facts = document.createElement("ul");
  facts.className = "page-facts";
  facts.setAttribute("aria-label", "About page " + page.number);
  const fact = (text, kind) => {
    const li = document.createElement("li");
    li.className = "fact" + (kind ? " fact-" + kind : "");
    li.textContent = text;
    facts.append(li);
  };
  fact(page.source === "text-layer" ? "Text layer" : "OCR", page.source === "text-layer" ? "text" : "ocr");
  if (typeof page.confidence === "number") fact("Confidence " + Math.round(page.confidence) + "%");
  fact(page.rotation ? "Rotated " + page.rotation + "°" : "Upright");
  head.append(title, facts);
  const text = document.createElement("pre");
  text.className = "page-text";
  // Long text scrolls inside its box: a named, focusable region lets keyboard users reach and scroll it.
  text.tabIndex = 0;
  text.setAttribute("role", "region");
  text.setAttribute("aria-label", "Text of page " + page.number);
  const hasText = Boolean(page.text && page.text.trim());
  text.textContent = hasText ? page.text : "No text was found on this page.";
  if (!hasText) text.classList.add("page-text-empty");
  item.append(head, text);
  item.dataset.number = String(page.number);
  return item;
}

// A page that arrived while the job runs, put in its place by page number (pages finish out of order).
function addPage(page) {
  if (view.shown.has(page.number)) return;
  const item = pageItem(page);
  const next = [...ui.resultPages.children].find((li) => Number(li.dataset.number) > page.number);
  ui.resultPages.insertBefore(item, next || null);
  view.shown.set(page.number, item);
  const total = view.job && view.job.pages_total;
  ui.resultSummary.textContent = view.shown.size + (total ? " of " + total : "") + " pages so far";
}

function renderResult(result) {
  const pages = result.pages || [];
  const bits = [pages.length + (pages.length === 1 ? " page" : " pages")];
  if (result.lang) bits.push("language " + result.lang);
  if (typeof result.duration_ms === "number") bits.push("OCR took " + (result.duration_ms / 1000).toFixed(1) + " s");
  ui.resultSummary.textContent = bits.join(" · ");
  ui.resultPages.replaceChildren(...pages.map(pageItem));
}

export async function openResult(job, opener) {
  stopFollowing();
  const id = job.id;
  Object.assign(view, { id, job, result: null, opener, shown: new Map() });
  ui.resultTitle.textContent = job.filename;
  ui.resultSummary.textContent = "";
  ui.resultPages.replaceChildren();
  setResultButtons(false);
  if (!ui.dialog.open) ui.dialog.showModal();
  if (job.status === "completed") await loadResult(job);
  else followRunning(job);
}

function stopFollowing() {
  if (view.stop) view.stop();
  view.stop = null;
}

function followRunning(job) {
  const id = job.id;
  ui.resultStatus.textContent = "Reading the document: its pages appear here as they are done.";
  let fetchedMissing = false;
  view.stop = followPages(job, {
    onPage: (page) => {
      if (view.id === id) addPage(page);
    },
    onGap: async () => {
      // Pages done before the stream's kept history began: asked for once.
      if (fetchedMissing) return;
      fetchedMissing = true;
      try {
        const answer = await (await api(jobUrl(job) + "/pages?after=0")).json();
        if (view.id === id && !view.result) for (const page of answer.pages || []) addPage(page);
      } catch (_) {
        // A server without /pages: the result brings them when the job completes.
      }
    },
    onEnd: (ended) => {
      if (view.id !== id) return;
      view.stop = null;
      if (ended && ended.status === "completed") {
        view.job = Object.assign({}, view.job, ended);
        loadResult(view.job);
      } else {
        const why = ended && ended.error && ended.error.message ? ": " + ended.error.message : ".";
        ui.resultStatus.textContent = ended ? "The job " + ended.status + why : "The job's events stopped.";
      }
    },
  });
}

async function loadResult(job) {
  const id = job.id;
  ui.resultStatus.textContent = "Loading the result…";
  try {
    const result = await (await api(resultUrl(job))).json();
    if (view.id !== id) return;
    view.result = result;
    renderResult(result);
    setResultButtons(true);
    ui.resultStatus.textContent = "";
  } catch (error) {
    if (view.id === id) ui.resultStatus.textContent = error.message;
  }
}

// A job deleted (here or elsewhere) takes its open result with it.
export function closeResultOf(id) {
  if (view.id === id && ui.dialog.open) ui.dialog.close();
}

function stem(filename) {
  const dot = filename.lastIndexOf(".");
  return (dot > 0 ? filename.slice(0, dot) : filename) || "document";
}

async function download(url, filename, button) {
  button.disabled = true;
  ui.resultStatus.textContent = "Preparing " + filename + "…";
  try {
    // Fetched rather than linked: a plain link could not send the API key.
    const blob = await (await api(url)).blob();
    const href = URL.createObjectURL(blob);
    const link = document.createElement("a");
    link.href = href;
    link.download = filename;
    link.hidden = true;
    ui.dialog.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(href), 30000);
    ui.resultStatus.textContent = "Downloaded " + filename + ".";
  } catch (error) {
    ui.resultStatus.textContent = error.message;
  } finally {
    button.disabled = false;
  }
}

async function copyToClipboard(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch (_) {
      // Permission refused: fall back to a selection.
    }
  }
  // Inside the dialog: while it is modal the rest of the page is inert and cannot hold a selection.
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.setAttribute("aria-hidden", "true");
  area.className = "offscreen";
  ui.dialog.append(area);
  area.select();
  let copied = false;
  try {
    copied = document.execCommand("copy");
  } catch (_) {
    copied = false;
  }
  area.remove();
  return copied;
}

export function initResultView() {
  ui.copyText.addEventListener("click", async () => {
    if (!view.result) return;
    const text = String(view.result.text || "").replace(/\f/g, "\n\n");
    const copied = await copyToClipboard(text);
    ui.copyText.focus();
    ui.resultStatus.textContent = copied ? "Text copied to the clipboard." : "Copying failed: select the text and copy it by hand.";
  });
  for (const [button, query, ending] of DOWNLOADS) {
    button.addEventListener("click", () => {
      const job = view.job;
      if (job) download(resultUrl(job) + query, stem(job.filename) + ending, button);
    });
  }
  ui.resultClose.addEventListener("click", () => ui.dialog.close());
  ui.dialog.addEventListener("click", (event) => {
    // A click on the backdrop lands on the dialog element itself.
    if (event.target === ui.dialog) ui.dialog.close();
  });
  ui.dialog.addEventListener("close", () => {
    stopFollowing();
    const opener = view.opener;
    Object.assign(view, { id: "", job: null, result: null, opener: null, shown: new Map() });
    if (opener && opener.isConnected && !opener.hidden) opener.focus();
  });
}
