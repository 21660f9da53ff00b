// The result dialog: one job's pages, with copy and downloads. `view` is what the dialog shows now, so that
// an answer arriving after the person moved on to another job (or closed the dialog) is dropped.

import { api, resultUrl } from "./api.js";
import { ui } from "./page.js";

const view = { id: "", job: null, result: null, opener: null };

function setResultButtons(enabled) {
  for (const button of [ui.copyText, ui.downloadText, ui.downloadPdf]) button.disabled = !enabled;
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
  return item;
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
  const id = job.id;
  Object.assign(view, { id, job, result: null, opener });
  ui.resultTitle.textContent = job.filename;
  ui.resultSummary.textContent = "";
  ui.resultStatus.textContent = "Loading the result…";
  ui.resultPages.replaceChildren();
  setResultButtons(false);
  if (!ui.dialog.open) ui.dialog.showModal();
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
  ui.downloadText.addEventListener("click", () => {
    const job = view.job;
    if (job) download(resultUrl(job) + "?format=text", stem(job.filename) + ".txt", ui.downloadText);
  });
  ui.downloadPdf.addEventListener("click", () => {
    const job = view.job;
    if (job) download(resultUrl(job) + "?format=pdf", stem(job.filename) + ".searchable.pdf", ui.downloadPdf);
  });
  ui.resultClose.addEventListener("click", () => ui.dialog.close());
  ui.dialog.addEventListener("click", (event) => {
    // A click on the backdrop lands on the dialog element itself.
    if (event.target === ui.dialog) ui.dialog.close();
  });
  ui.dialog.addEventListener("close", () => {
    const opener = view.opener;
    Object.assign(view, { id: "", job: null, result: null, opener: null });
    if (opener && opener.isConnected && !opener.hidden) opener.focus();
  });
}
