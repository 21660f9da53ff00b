// Uploads: files chosen or dropped get a pending row at once, then go to POST /jobs a few at a time. Each
// answer hands the upload's row to the job whose id it names (see jobs.js), never matched by file name.

import { api } from "./api.js";
import { uploadAnswered, uploadSent, updateCount } from "./jobs.js";
import { announce, ui } from "./page.js";
import { pendingRow, renderRefused } from "./rows.js";

const MAX_PARALLEL_UPLOADS = 3;

const uploads = { queue: [], sending: 0 }; // queue: {file, options, row} not sent yet

function readOptions() {
  for (const input of [ui.lang, ui.dpi, ui.pages]) {
    if (!input.checkValidity()) {
      input.setAttribute("aria-invalid", "true");
      const label = document.querySelector('label[for="' + input.id + '"]').textContent;
      throw new Error(label + ": " + (input.validationMessage || "this value is not valid."));
    }
    input.setAttribute("aria-invalid", "false");
  }
  return {
    lang: ui.lang.value.trim(),
    dpi: ui.dpi.value.trim(),
    force_ocr: ui.force.checked ? "true" : "false",
    pages: ui.pages.value.trim(),
  };
}

async function send({ file, options, row }) {
  const body = new FormData();
  body.append("file", file, file.name);
  body.append("lang", options.lang);
  body.append("dpi", options.dpi);
  body.append("force_ocr", options.force_ocr);
  if (options.pages) body.append("pages", options.pages);
  uploadSent();
  let job;
  try {
    job = await (await api("/jobs", { method: "POST", body })).json();
  } catch (error) {
    uploadAnswered(null, row);
    renderRefused(row, file, error.message);
    announce(file.name + " was not accepted: " + error.message);
    return;
  }
  uploadAnswered(job, row);
  if (job.cached) announce(job.filename + " was done before: its result is ready.");
}

function pump() {
  while (uploads.sending < MAX_PARALLEL_UPLOADS && uploads.queue.length) {
    const item = uploads.queue.shift();
    uploads.sending += 1;
    send(item).finally(() => {
      uploads.sending -= 1;
      pump();
    });
  }
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
    const row = pendingRow(file);
    ui.list.prepend(row);
    uploads.queue.push({ file, options, row });
  }
  updateCount();
  announce(files.length === 1 ? "Uploading " + files[0].name + "…" : "Uploading " + files.length + " files…");
  pump();
}

const hasFiles = (event) => event.dataTransfer && Array.from(event.dataTransfer.types || []).includes("Files");

export function initUploads() {
  ui.fileInput.addEventListener("change", () => {
    enqueue(ui.fileInput.files);
    ui.fileInput.value = ""; // picking the same file again still fires `change`
  });
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
}
