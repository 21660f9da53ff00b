"use strict";
// The upload page. The job list is driven by the tenant's event feed (GET /events over EventSource)
// alone: the page never polls job status. Server data (file names, text, messages) is untrusted and
// only ever goes into the page through textContent and attributes, never as HTML.
(function () {
  const KEY_STORAGE = "ocr-service.api-key";
  const MAX_PARALLEL_UPLOADS = 3;
  const RECONNECT_MIN_MS = 1000;
  const RECONNECT_MAX_MS = 30000;
  const ACTIVE = new Set(["queued", "running"]);
  const STATUS_LABELS = {
    queued: "Queued",
    running: "Running",
    completed: "Completed",
    failed: "Failed",
    cancelled: "Cancelled",
    uploading: "Uploading",
    rejected: "Not accepted",
  };

  const $ = (id) => document.getElementById(id);
  const ui = {
    connection: $("connection"),
    connectionText: $("connection-text"),
    auth: $("auth"),
    keyForm: $("key-form"),
    keyInput: $("api-key"),
    keyError: $("key-error"),
    upload: $("upload"),
    uploadForm: $("upload-form"),
    uploadError: $("upload-error"),
    fileInput: $("file-input"),
    dropzone: $("dropzone"),
    lang: $("opt-lang"),
    dpi: $("opt-dpi"),
    force: $("opt-force"),
    notice: $("notice"),
    noticeText: $("notice-text"),
    noticeClose: $("notice-close"),
    empty: $("empty"),
    jobCount: $("job-count"),
    list: $("job-list"),
    announcer: $("announcer"),
    template: $("job-template"),
    dialog: $("result"),
    resultTitle: $("result-title"),
    resultSummary: $("result-summary"),
    resultStatus: $("result-status"),
    resultPages: $("result-pages"),
    resultClose: $("result-close"),
    copyText: $("copy-text"),
    downloadText: $("download-text"),
    downloadPdf: $("download-pdf"),
  };

  const jobs = new Map(); // job id -> the latest job object seen
  const rows = new Map(); // job id -> its <li>

  // ---------------------------------------------------------------- HTTP

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  function storedKey() {
    try {
      return sessionStorage.getItem(KEY_STORAGE);
    } catch (_) {
      return null;
    }
  }

  function storeKey(key) {
    try {
      if (key) sessionStorage.setItem(KEY_STORAGE, key);
      else sessionStorage.removeItem(KEY_STORAGE);
    } catch (_) {
      // Storage can be disabled; the key then lasts until the page is closed.
    }
    memoryKey = key;
  }

  let memoryKey = storedKey();

  async function api(path, init) {
    const headers = new Headers((init && init.headers) || {});
    const sentKey = memoryKey;
    if (sentKey) headers.set("Authorization", "Bearer " + sentKey);
    let response;
    try {
      response = await fetch(path, Object.assign({}, init, { headers, cache: "no-store" }));
    } catch (_) {
      throw new ApiError(0, "network_error", "The server could not be reached. Check the connection and try again.");
    }
    if (response.ok) return response;
    const error = await errorOf(response);
    if (response.status === 401) askForKey(sentKey ? error.message : "");
    throw error;
  }

  async function errorOf(response) {
    let code = "http_" + response.status;
    let message = "The server answered " + response.status + (response.statusText ? " " + response.statusText : "") + ".";
    try {
      const body = await response.json();
      if (body && body.error) {
        code = String(body.error.code || code);
        message = String(body.error.message || message);
      }
    } catch (_) {
      // Not JSON (a proxy's page, say): keep the generic message.
    }
    return new ApiError(response.status, code, message);
  }

  // ---------------------------------------------------------------- API key

  function askForKey(message) {
    storeKey(null);
    closeFeed();
    // The next key may be another tenant's: forget this one's jobs and its place in the feed.
    for (const id of Array.from(rows.keys())) removeJob(id);
    feed.lastEventId = "";
    ui.list.setAttribute("aria-busy", "true");
    ui.empty.textContent = "Enter an API key to see your jobs.";
    setConnection("locked", "API key needed");
    ui.auth.hidden = false;
    ui.upload.hidden = true;
    ui.keyError.textContent = message;
    ui.keyError.hidden = !message;
    ui.keyInput.setAttribute("aria-invalid", message ? "true" : "false");
    ui.keyInput.value = "";
    if (!ui.dialog.open) ui.keyInput.focus();
  }

  ui.keyForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const key = ui.keyInput.value.trim();
    if (!key) {
      ui.keyError.textContent = "Enter an API key.";
      ui.keyError.hidden = false;
      ui.keyInput.setAttribute("aria-invalid", "true");
      ui.keyInput.focus();
      return;
    }
    storeKey(key);
    ui.keyError.hidden = true;
    ui.keyInput.setAttribute("aria-invalid", "false");
    connectFeed();
  });

  const emptyText = ui.empty.textContent;

  function keyAccepted() {
    if (!ui.auth.hidden) {
      ui.auth.hidden = true;
      ui.upload.hidden = false;
      ui.keyInput.value = "";
      ui.empty.textContent = emptyText;
      $("upload-title").focus();
      announce("API key accepted.");
    }
  }

  // ---------------------------------------------------------------- event feed

  // `generation` tells a connect attempt that a newer one started while it waited for its link.
  const feed = { source: null, lastEventId: "", retryMs: RECONNECT_MIN_MS, timer: 0, generation: 0 };

  function setConnection(state, text) {
    ui.connection.dataset.state = state;
    ui.connectionText.textContent = text;
  }

  function closeFeed() {
    feed.generation += 1;
    clearTimeout(feed.timer);
    if (feed.source) feed.source.close();
    feed.source = null;
  }

  async function connectFeed() {
    closeFeed();
    const generation = ++feed.generation;
    setConnection(feed.lastEventId ? "reconnecting" : "connecting", feed.lastEventId ? "Reconnecting…" : "Connecting…");
    let link;
    try {
      const response = await api("/events/link");
      link = (await response.json()).links.events;
    } catch (error) {
      if (generation === feed.generation && error.status !== 401) scheduleReconnect();
      return;
    }
    if (generation !== feed.generation) return;
    keyAccepted();
    // A new EventSource cannot send Last-Event-ID; the server reads the same from the query.
    let url = link;
    if (feed.lastEventId) url += (url.includes("?") ? "&" : "?") + "lastEventId=" + encodeURIComponent(feed.lastEventId);
    const source = new EventSource(url);
    feed.source = source;
    source.addEventListener("open", () => {
      if (feed.source !== source) return;
      feed.retryMs = RECONNECT_MIN_MS;
      setConnection("live", "Live");
    });
    source.addEventListener("error", () => {
      if (feed.source !== source) return;
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (the token expired, the server answered an error): start over with a fresh link.
        source.close();
        feed.source = null;
        scheduleReconnect();
      } else {
        setConnection("reconnecting", "Reconnecting…");
      }
    });
    for (const name of ["snapshot", "status", "progress", "deleted"]) {
      source.addEventListener(name, (event) => {
        if (feed.source !== source) return;
        if (event.lastEventId) feed.lastEventId = event.lastEventId;
        let data;
        try {
          data = JSON.parse(event.data);
        } catch (_) {
          return;
        }
        onFeedEvent(name, data);
      });
    }
  }

  function scheduleReconnect() {
    setConnection("reconnecting", "Reconnecting…");
    const delay = feed.retryMs * (0.75 + Math.random() * 0.5);
    feed.retryMs = Math.min(feed.retryMs * 2, RECONNECT_MAX_MS);
    clearTimeout(feed.timer);
    feed.timer = setTimeout(connectFeed, delay);
  }

  window.addEventListener("online", () => {
    if (!feed.source && ui.auth.hidden) {
      feed.retryMs = RECONNECT_MIN_MS;
      connectFeed();
    }
  });

  function onFeedEvent(name, data) {
    if (name === "snapshot") {
      const fresh = new Set();
      for (const job of data.jobs || []) {
        fresh.add(job.id);
        upsertJob(job, { fromFeed: true });
      }
      for (const id of Array.from(jobs.keys())) {
        if (!fresh.has(id)) removeJob(id);
      }
      ui.list.setAttribute("aria-busy", "false");
    } else if (name === "deleted") {
      const job = jobs.get(data.id);
      if (job && removeJob(data.id)) announce(job.filename + " deleted.");
    } else {
      upsertJob(data, { fromFeed: true });
    }
  }

  // ---------------------------------------------------------------- job rows

  function upsertJob(job, { fromFeed }) {
    if (!job || typeof job.id !== "string") return;
    const previous = jobs.get(job.id);
    // The feed is ordered; an upload's answer may arrive after newer feed events and must not undo them.
    if (previous && !fromFeed) return;
    jobs.set(job.id, job);
    let row = rows.get(job.id);
    if (!row) {
      // The feed often tells of a new job before its upload's answer arrives: take over that upload's row.
      const upload = inFlight.find((item) => !item.jobId && item.file.name === job.filename);
      if (upload) {
        upload.jobId = job.id;
        row = adoptRow(upload.row, job.id);
      } else {
        row = adoptRow(newRow(), job.id);
        placeRow(row, job);
      }
    }
    renderJob(row, job);
    if (previous && previous.status !== job.status) announceStatus(job);
    updateCount();
  }

  function removeJob(id) {
    const row = rows.get(id);
    jobs.delete(id);
    rows.delete(id);
    if (!row) return false;
    const hadFocus = row.contains(document.activeElement);
    row.remove();
    if (hadFocus) $("jobs-title").focus();
    if (resultView.id === id && ui.dialog.open) ui.dialog.close();
    updateCount();
    return true;
  }

  function newRow() {
    return ui.template.content.firstElementChild.cloneNode(true);
  }

  function adoptRow(row, id) {
    row.classList.remove("pending");
    row.dataset.id = id;
    rows.set(id, row);
    return row;
  }

  function placeRow(row, job) {
    // Newest first, as the feed lists them; rows of uploads still in flight stay on top.
    const created = job.created_at || "";
    for (const other of ui.list.children) {
      const otherJob = jobs.get(other.dataset.id);
      if (otherJob && (otherJob.created_at || "") < created) {
        ui.list.insertBefore(row, other);
        return;
      }
    }
    ui.list.append(row);
  }

  function part(row, name) {
    return row.querySelector("." + name);
  }

  function action(row, name) {
    return row.querySelector('[data-action="' + name + '"]');
  }

  function renderJob(row, job) {
    const name = job.filename || "document";
    const status = job.status;
    row.dataset.status = status;
    part(row, "job-name").textContent = name;
    part(row, "job-name").title = name;
    part(row, "badge").textContent = STATUS_LABELS[status] || status;

    const progress = part(row, "job-progress");
    const value = Math.max(0, Math.min(100, Number(job.progress) || 0));
    progress.value = status === "completed" ? 100 : value;
    progress.setAttribute("aria-label", "Progress of " + name);
    progress.setAttribute("aria-valuetext", value + "%" + (job.message ? ", " + job.message : ""));

    part(row, "job-message").textContent = job.message || STATUS_LABELS[status] || "";
    part(row, "job-detail").textContent = jobDetail(job);

    const error = part(row, "job-error");
    const errorText = job.error && job.error.message ? job.error.message : "";
    error.textContent = errorText;
    error.hidden = !errorText;

    const hadFocus = row.contains(document.activeElement) ? document.activeElement : null;
    setAction(row, "open", status === "completed", "Open result of " + name);
    setAction(row, "cancel", ACTIVE.has(status), "Cancel " + name);
    setAction(row, "delete", !ACTIVE.has(status), "Delete " + name);
    setAction(row, "dismiss", false, "");
    if (hadFocus && hadFocus.hidden) {
      // The focused button went away (Cancel once the job ended): keep focus in the row.
      const next = row.querySelector(".job-actions button:not([hidden])");
      if (next) next.focus();
    }
  }

  function setAction(row, name, visible, label) {
    const button = action(row, name);
    button.hidden = !visible;
    button.disabled = false;
    if (label) button.setAttribute("aria-label", label);
  }

  function jobDetail(job) {
    const bits = [];
    if (job.pages_total) bits.push(job.pages_done + " of " + job.pages_total + (job.pages_total === 1 ? " page" : " pages"));
    if (job.options && job.options.lang) bits.push(job.options.lang);
    if (job.cached) bits.push("from cache");
    if (job.attempt > 1) bits.push("attempt " + job.attempt);
    const took = duration(job.started_at, job.finished_at);
    if (job.status === "completed" && took) bits.push("took " + took);
    const when = clock(job.created_at);
    if (when) bits.push(when);
    return bits.join(" · ");
  }

  function clock(iso) {
    const date = iso ? new Date(iso) : null;
    if (!date || isNaN(date)) return "";
    const today = new Date().toDateString() === date.toDateString();
    return today
      ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
      : date.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
  }

  function duration(startIso, endIso) {
    if (!startIso || !endIso) return "";
    const ms = new Date(endIso) - new Date(startIso);
    if (!(ms >= 0)) return "";
    return ms < 60000 ? (ms / 1000).toFixed(1) + " s" : Math.round(ms / 60000) + " min";
  }

  function updateCount() {
    const count = ui.list.children.length;
    ui.empty.hidden = count > 0;
    ui.jobCount.textContent = count ? count + (count === 1 ? " job" : " jobs") : "";
  }

  function announceStatus(job) {
    let text = job.filename + ": " + (STATUS_LABELS[job.status] || job.status).toLowerCase();
    if (job.status === "failed" && job.error && job.error.message) text += ". " + job.error.message;
    announce(text + ".");
  }

  function announce(text) {
    // Clear first so that the same words said twice are still read out.
    ui.announcer.textContent = "";
    setTimeout(() => {
      ui.announcer.textContent = text;
    }, 50);
  }

  function showNotice(text) {
    ui.noticeText.textContent = text;
    ui.notice.hidden = false;
  }

  ui.noticeClose.addEventListener("click", () => {
    ui.notice.hidden = true;
  });

  ui.list.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const row = button.closest(".job");
    const id = row.dataset.id;
    const name = button.dataset.action;
    if (name === "dismiss") {
      const hadFocus = row.contains(document.activeElement);
      row.remove();
      updateCount();
      if (hadFocus) $("jobs-title").focus();
    } else if (name === "open") {
      openResult(id, button);
    } else if (name === "cancel") {
      removeOrCancel(id, button, "cancel");
    } else if (name === "delete") {
      removeOrCancel(id, button, "delete");
    }
  });

  async function removeOrCancel(id, button, what) {
    const job = jobs.get(id);
    if (!job) return;
    button.disabled = true;
    try {
      const response = await api(jobUrl(job), { method: "DELETE" });
      if (response.status === 204) {
        // Deleted; the feed's `deleted` event follows and finds the row gone already.
        removeJob(id);
        announce(job.filename + " deleted.");
      } else {
        announce("Cancelling " + job.filename + "…");
      }
    } catch (error) {
      button.disabled = false;
      showNotice((what === "cancel" ? "Could not cancel " : "Could not delete ") + job.filename + ": " + error.message);
    }
  }

  function jobUrl(job) {
    return (job.links && job.links.self) || "/jobs/" + encodeURIComponent(job.id);
  }

  function resultUrl(job) {
    return (job.links && job.links.result) || jobUrl(job) + "/result";
  }

  // ---------------------------------------------------------------- uploads

  const queue = [];
  const inFlight = []; // uploads sent and not yet answered: {file, options, row, jobId}
  let uploading = 0;

  function readOptions() {
    for (const input of [ui.lang, ui.dpi]) {
      if (!input.checkValidity()) {
        input.setAttribute("aria-invalid", "true");
        const label = document.querySelector('label[for="' + input.id + '"]').textContent;
        throw new Error(label + ": " + (input.validationMessage || "this value is not valid."));
      }
      input.setAttribute("aria-invalid", "false");
    }
    return { lang: ui.lang.value.trim(), dpi: ui.dpi.value.trim(), force_ocr: ui.force.checked ? "true" : "false" };
  }

  function enqueue(files) {
    if (!files || !files.length) return;
    let options;
    try {
      options = readOptions();
    } catch (error) {
      ui.uploadError.textContent = error.message;
      ui.uploadError.hidden = false;
      return;
    }
    ui.uploadError.hidden = true;
    for (const file of Array.from(files)) {
      queue.push({ file, options, row: pendingRow(file), jobId: "" });
    }
    updateCount();
    announce(files.length === 1 ? "Uploading " + files[0].name + "…" : "Uploading " + files.length + " files…");
    pump();
  }

  function pump() {
    while (uploading < MAX_PARALLEL_UPLOADS && queue.length) {
      const item = queue.shift();
      uploading += 1;
      upload(item).finally(() => {
        uploading -= 1;
        pump();
      });
    }
  }

  function pendingRow(file) {
    const row = newRow();
    row.classList.add("pending");
    row.dataset.status = "uploading";
    part(row, "job-name").textContent = file.name;
    part(row, "job-name").title = file.name;
    part(row, "badge").textContent = STATUS_LABELS.uploading;
    const progress = part(row, "job-progress");
    progress.removeAttribute("value"); // indeterminate while the bytes travel
    progress.setAttribute("aria-label", "Upload of " + file.name);
    part(row, "job-message").textContent = "Uploading…";
    part(row, "job-detail").textContent = formatSize(file.size);
    ui.list.prepend(row);
    return row;
  }

  async function upload(item) {
    const { file, options } = item;
    const body = new FormData();
    body.append("file", file, file.name);
    body.append("lang", options.lang);
    body.append("dpi", options.dpi);
    body.append("force_ocr", options.force_ocr);
    inFlight.push(item);
    let job = null;
    let failure = null;
    try {
      job = await (await api("/jobs", { method: "POST", body })).json();
    } catch (error) {
      failure = error;
    }
    inFlight.splice(inFlight.indexOf(item), 1);
    if (failure) {
      // A row taken over by a job of the same name belongs to that job now; the refusal gets its own.
      rejectRow(item.jobId ? pendingRow(file) : item.row, file, failure.message);
      updateCount();
      announce(file.name + " was not accepted: " + failure.message);
      return;
    }
    if (!item.jobId) {
      if (rows.has(job.id)) {
        item.row.remove();
      } else {
        adoptRow(item.row, job.id);
      }
    }
    upsertJob(job, { fromFeed: false });
    if (job.cached) announce(job.filename + " was done before: its result is ready.");
  }

  function rejectRow(row, file, message) {
    row.dataset.status = "rejected";
    part(row, "badge").textContent = STATUS_LABELS.rejected;
    part(row, "job-progress").hidden = true;
    part(row, "job-message").textContent = "Not uploaded";
    const error = part(row, "job-error");
    error.textContent = message;
    error.hidden = false;
    const dismiss = action(row, "dismiss");
    dismiss.hidden = false;
    dismiss.setAttribute("aria-label", "Dismiss " + file.name);
  }

  function formatSize(bytes) {
    if (bytes < 1024) return bytes + " B";
    if (bytes < 1024 * 1024) return (bytes / 1024).toFixed(0) + " KB";
    return (bytes / (1024 * 1024)).toFixed(1) + " MB";
  }

  ui.fileInput.addEventListener("change", () => {
    enqueue(ui.fileInput.files);
    ui.fileInput.value = ""; // picking the same file again still fires `change`
  });

  const hasFiles = (event) => event.dataTransfer && Array.from(event.dataTransfer.types || []).includes("Files");

  for (const type of ["dragenter", "dragover"]) {
    ui.dropzone.addEventListener(type, (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
      ui.dropzone.classList.add("dragover");
    });
  }
  ui.dropzone.addEventListener("dragleave", (event) => {
    if (!ui.dropzone.contains(event.relatedTarget)) ui.dropzone.classList.remove("dragover");
  });
  ui.dropzone.addEventListener("drop", (event) => {
    event.preventDefault();
    ui.dropzone.classList.remove("dragover");
    enqueue(event.dataTransfer.files);
  });
  // A file dropped beside the zone must not make the browser navigate away to it.
  for (const type of ["dragover", "drop"]) {
    window.addEventListener(type, (event) => {
      if (hasFiles(event)) event.preventDefault();
    });
  }
  ui.uploadForm.addEventListener("submit", (event) => event.preventDefault());

  // ---------------------------------------------------------------- result view

  const resultView = { id: "", job: null, result: null, opener: null };

  async function openResult(id, opener) {
    const job = jobs.get(id);
    if (!job) return;
    Object.assign(resultView, { id, job, result: null, opener });
    ui.resultTitle.textContent = job.filename;
    ui.resultSummary.textContent = "";
    ui.resultStatus.textContent = "Loading the result…";
    ui.resultPages.replaceChildren();
    setResultButtons(false);
    if (!ui.dialog.open) ui.dialog.showModal();
    try {
      const result = await (await api(resultUrl(job))).json();
      if (resultView.id !== id) return;
      resultView.result = result;
      renderResult(result);
      setResultButtons(true);
      ui.resultStatus.textContent = "";
    } catch (error) {
      if (resultView.id === id) ui.resultStatus.textContent = error.message;
    }
  }

  function setResultButtons(enabled) {
    for (const button of [ui.copyText, ui.downloadText, ui.downloadPdf]) button.disabled = !enabled;
  }

  function renderResult(result) {
    const pages = result.pages || [];
    const bits = [pages.length + (pages.length === 1 ? " page" : " pages")];
    if (result.lang) bits.push("language " + result.lang);
    if (typeof result.duration_ms === "number") bits.push("OCR took " + (result.duration_ms / 1000).toFixed(1) + " s");
    ui.resultSummary.textContent = bits.join(" · ");
    const items = pages.map((page) => {
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
      text.textContent = page.text && page.text.trim() ? page.text : "No text was found on this page.";
      if (!(page.text && page.text.trim())) text.classList.add("page-text-empty");
      item.append(head, text);
      return item;
    });
    ui.resultPages.replaceChildren(...items);
  }

  function stem(filename) {
    const dot = filename.lastIndexOf(".");
    return (dot > 0 ? filename.slice(0, dot) : filename) || "document";
  }

  async function download(url, filename, button) {
    button.disabled = true;
    ui.resultStatus.textContent = "Preparing " + filename + "…";
    try {
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

  ui.copyText.addEventListener("click", async () => {
    if (!resultView.result) return;
    const text = String(resultView.result.text || "").replace(/\f/g, "\n\n");
    const copied = await copyToClipboard(text);
    ui.copyText.focus();
    ui.resultStatus.textContent = copied ? "Text copied to the clipboard." : "Copying failed: select the text and copy it by hand.";
  });

  ui.downloadText.addEventListener("click", () => {
    const job = resultView.job;
    if (job) download(resultUrl(job) + "?format=text", stem(job.filename) + ".txt", ui.downloadText);
  });

  ui.downloadPdf.addEventListener("click", () => {
    const job = resultView.job;
    if (job) download(resultUrl(job) + "?format=pdf", stem(job.filename) + ".searchable.pdf", ui.downloadPdf);
  });

  ui.resultClose.addEventListener("click", () => ui.dialog.close());
  ui.dialog.addEventListener("click", (event) => {
    // A click on the backdrop lands on the dialog element itself.
    if (event.target === ui.dialog) ui.dialog.close();
  });
  ui.dialog.addEventListener("close", () => {
    const opener = resultView.opener;
    Object.assign(resultView, { id: "", job: null, result: null, opener: null });
    if (opener && opener.isConnected && !opener.hidden) opener.focus();
  });

  // ---------------------------------------------------------------- start

  updateCount();
  connectFeed();
})();
