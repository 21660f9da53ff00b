"use strict";
// Live figures from /ops/events (Server-Sent Events); EventSource reconnects by itself.
(function () {
  const connection = document.getElementById("connection");
  const set = (id, value) => {
    const cell = document.getElementById(id);
    if (cell) cell.textContent = String(value);
  };
  const source = new EventSource("/ops/events");
  source.addEventListener("open", () => { connection.textContent = "Live"; });
  source.addEventListener("error", () => { connection.textContent = "Reconnecting…"; });
  source.addEventListener("stats", (event) => {
    const stats = JSON.parse(event.data);
    for (const key of ["workers_alive", "queue_depth", "oldest_queued_s", "pages_held", "sse_clients",
                       "web_processes", "completed_per_minute", "failed_per_minute"]) {
      set(key, stats[key]);
    }
    set("jobs_completed", stats.jobs.completed);
    set("jobs_failed", stats.jobs.failed);
    set("jobs_cancelled", stats.jobs.cancelled);
    set("pages_ocr", stats.pages.ocr);
    set("pages_text_layer", stats.pages["text-layer"]);
    const rows = stats.tenants_waiting.map((t) => {
      const row = document.createElement("tr");
      for (const value of [t.tenant, t.priority, t.pages, t.oldest_wait_s]) {
        const cell = document.createElement("td");
        cell.textContent = String(value);  // tenant names are text, never markup
        row.append(cell);
      }
      return row;
    });
    if (rows.length === 0) {
      const row = document.createElement("tr");
      const cell = document.createElement("td");
      cell.colSpan = 4;
      cell.textContent = "Nothing waiting";
      row.append(cell);
      rows.push(row);
    }
    document.getElementById("tenants_waiting").replaceChildren(...rows);
    document.getElementById("workers_alive").classList.toggle("alert", stats.workers_alive === 0);
    connection.textContent = "Live";
  });
})();
