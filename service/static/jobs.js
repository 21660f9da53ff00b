// The job list: every job the page knows of (from the feed, and from the answers to its own uploads) and the
// row showing each. This module alone owns that state, in `list`; other modules change it only through the
// functions exported here.
//
// An upload's row is handed to the job whose id its POST /jobs answer names. The feed usually tells of that
// job a moment before the answer arrives, and nothing in the feed says which upload it came from (a file
// name cannot: the server cleans names, and two files may share one). So a job the feed announces while
// uploads await their answers is held without a row for a moment, for an answer to claim it.

import { api, jobUrl } from "./api.js";
import { announce, showNotice, ui } from "./page.js";
import { closeResultOf, openResult } from "./result.js";
import { STATUS_LABELS, newRow, renderJob } from "./rows.js";

// Longer than an answer takes to follow its job's first feed event; short enough that a job started
// elsewhere (another tab, the API) during a long upload still shows soon.
const HOLD_MS = 3000;

const list = {
  jobs: new Map(), // job id -> the latest job object seen
  rows: new Map(), // job id -> its <li>
  held: new Set(), // ids of jobs from the feed that have no row yet: one may be an upload awaiting its answer
  awaiting: 0, // uploads sent and not yet answered
  emptyText: ui.empty.textContent,
};

export function updateCount() {
  const count = ui.list.children.length;
  ui.empty.hidden = count > 0;
  ui.jobCount.textContent = count ? count + (count === 1 ? " job" : " jobs") : "";
}

function announceStatus(job) {
  let text = job.filename + ": " + (STATUS_LABELS[job.status] || job.status).toLowerCase();
  if (job.status === "failed" && job.error && job.error.message) text += ". " + job.error.message;
  announce(text + ".");
}

function adoptRow(row, id) {
  row.classList.remove("pending");
  row.dataset.id = id;
  list.rows.set(id, row);
  return row;
}

function placeRow(row, job) {
  // Newest first, as the feed lists them; rows of uploads still in flight stay on top.
  const created = job.created_at || "";
  for (const other of ui.list.children) {
    const otherJob = list.jobs.get(other.dataset.id);
    if (otherJob && (otherJob.created_at || "") < created) {
      ui.list.insertBefore(row, other);
      return;
    }
  }
  ui.list.append(row);
}

// A held job no upload answer claimed (in time) is someone else's, or an upload's whose answer was lost.
function release(id) {
  list.held.delete(id);
  const job = list.jobs.get(id);
  if (!job || list.rows.has(id)) return;
  const row = adoptRow(newRow(), id);
  placeRow(row, job);
  renderJob(row, job);
  updateCount();
}

function hold(id) {
  if (list.held.has(id)) return;
  list.held.add(id);
  setTimeout(() => release(id), HOLD_MS);
}

function fromFeed(job) {
  if (!job || typeof job.id !== "string") return;
  const previous = list.jobs.get(job.id);
  list.jobs.set(job.id, job);
  const row = list.rows.get(job.id);
  if (row) renderJob(row, job);
  else if (list.awaiting > 0) hold(job.id);
  else release(job.id);
  if (previous && previous.status !== job.status) announceStatus(job);
  updateCount();
}

export function removeJob(id) {
  const row = list.rows.get(id);
  list.jobs.delete(id);
  list.rows.delete(id);
  list.held.delete(id);
  if (!row) return false;
  const hadFocus = row.contains(document.activeElement);
  row.remove();
  if (hadFocus) ui.jobsTitle.focus();
  closeResultOf(id);
  updateCount();
  return true;
}

export function applyFeedEvent(name, data) {
  if (name === "snapshot") {
    const fresh = new Set();
    for (const job of data.jobs || []) {
      fresh.add(job.id);
      fromFeed(job);
    }
    for (const id of Array.from(list.jobs.keys())) {
      if (!fresh.has(id)) removeJob(id);
    }
    ui.list.setAttribute("aria-busy", "false");
  } else if (name === "deleted") {
    const job = list.jobs.get(data.id);
    if (job && removeJob(data.id)) announce(job.filename + " deleted.");
  } else {
    fromFeed(data);
  }
}

export function uploadSent() {
  list.awaiting += 1;
}

// `job` is the POST's answer, or null if the upload was refused; `row` is the upload's pending row.
export function uploadAnswered(job, row) {
  list.awaiting -= 1;
  if (job && typeof job.id === "string") {
    if (list.rows.has(job.id)) {
      // Its hold ran out and the job got a row of its own already.
      row.remove();
    } else {
      adoptRow(row, job.id);
      list.held.delete(job.id);
    }
    // The feed is ordered and may have told newer news than this answer: keep the feed's copy.
    if (!list.jobs.has(job.id)) list.jobs.set(job.id, job);
    renderJob(list.rows.get(job.id), list.jobs.get(job.id));
  }
  if (list.awaiting === 0) {
    for (const id of Array.from(list.held)) release(id);
  }
  updateCount();
}

// The next key may be another tenant's: forget this one's jobs.
export function forgetJobs(emptyText) {
  for (const id of new Set([...list.jobs.keys(), ...list.rows.keys()])) removeJob(id);
  ui.list.setAttribute("aria-busy", "true");
  ui.empty.textContent = emptyText;
}

export function showDefaultEmptyText() {
  ui.empty.textContent = list.emptyText;
}

async function removeOrCancel(id, button, what) {
  const job = list.jobs.get(id);
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

export function initJobList() {
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
      if (hadFocus) ui.jobsTitle.focus();
    } else if (name === "open") {
      const job = list.jobs.get(id);
      if (job) openResult(job, button);
    } else if (name === "cancel" || name === "delete") {
      removeOrCancel(id, button, name);
    }
  });
}
