// How one row of the job list looks, drawn from a job object or from an upload still on its way. Holds no
// state: which row belongs to which job is jobs.js's business.

import { ui } from "./page.js";

export const STATUS_LABELS = {
  queued: "Queued",
  running: "Running",
  completed: "Completed",
  failed: "Failed",
  cancelled: "Cancelled",
  uploading: "Uploading",
  rejected: "Not accepted",
};
const ACTIVE = new Set(["queued", "running"]);

function part(row, name) {
  return row.querySelector("." + name);
}

function action(row, name) {
  return row.querySelector('[data-action="' + name + '"]');
}

export function newRow() {
  return ui.template.content.firstElementChild.cloneNode(true);
}

export function formatSize(bytes) {
  if (bytes < 1024) return bytes + " B";
  if (bytes < 1024 * 1024) return (bytes / 1024).toFixed(0) + " KB";
  return (bytes / (1024 * 1024)).toFixed(1) + " MB";
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

function setAction(row, name, visible, label) {
  const button = action(row, name);
  button.hidden = !visible;
  button.disabled = false;
  if (label) button.setAttribute("aria-label", label);
}

export function renderJob(row, job) {
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
  // A running job opens too: its pages appear as they are done.
  const running = status === "running";
  setAction(row, "open", status === "completed" || running, (running ? "Show pages of " : "Open result of ") + name);
  action(row, "open").textContent = running ? "Show pages" : "Open result";
  setAction(row, "cancel", ACTIVE.has(status), "Cancel " + name);
  setAction(row, "delete", !ACTIVE.has(status), "Delete " + name);
  setAction(row, "dismiss", false, "");
  if (hadFocus && hadFocus.hidden) {
    // The focused button went away (Cancel once the job ended): keep focus in the row.
    const next = row.querySelector(".job-actions button:not([hidden])");
    if (next) next.focus();
  }
}

// Named as the person's file is, until the job's answer gives the name the server kept.
export function pendingRow(file) {
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
  return row;
}

export function renderRefused(row, file, message) {
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
