// A job's pages as they are done: its own event stream (GET /jobs/<id>/events), opened only while the
// person looks at that job's pages, and closed when the job ends or the view closes. The job list never
// needs it: the tenant's feed carries the progress of every job.

const TERMINAL = new Set(["completed", "failed", "cancelled"]);

function parse(event) {
  try {
    return JSON.parse(event.data);
  } catch (_) {
    return null;
  }
}

// onPage(page) for each finished page (in the order pages finish; a page may come twice), onGap() when
// the job has more pages done than the stream told (its history was past keeping), onEnd(job or null)
// once. Returns the function that stops following.
export function followPages(job, { onPage, onGap, onEnd }) {
  const url = new URL(job.links.events, window.location.href);
  // From the job's first event, so that the pages done before the view opened come too. (A new
  // EventSource cannot send Last-Event-ID; the server reads the same from the query.)
  url.searchParams.set("lastEventId", "0");
  const source = new EventSource(url.toString());
  const seen = new Set();
  let ended = false;
  const stop = () => {
    ended = true;
    source.close();
  };
  const end = (last) => {
    if (ended) return;
    stop();
    onEnd(last);
  };
  source.addEventListener("page", (event) => {
    const data = parse(event);
    if (ended || !data || !data.page) return;
    seen.add(data.page.number);
    onPage(data.page);
  });
  const onChange = (event) => {
    const changed = parse(event);
    if (ended || !changed) return;
    if ((changed.pages_done || 0) > seen.size) onGap();
    if (TERMINAL.has(changed.status)) end(changed);
  };
  source.addEventListener("status", onChange);
  source.addEventListener("progress", onChange);
  source.addEventListener("deleted", () => end(null));
  // EventSource reconnects by itself (with Last-Event-ID); CLOSED means it gave up.
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) end(null);
  });
  return stop;
}
