// The tenant's event feed (GET /events over EventSource) is the page's only news of its jobs: the page never
// polls job status. This module owns the connection and where in the feed the page has got to.

import { api } from "./api.js";
import { setConnection } from "./page.js";

const RECONNECT_MIN_MS = 1000;
const RECONNECT_MAX_MS = 30000;
const EVENT_NAMES = ["snapshot", "status", "progress", "deleted"];

// `generation` tells a connect attempt that a newer one started (or the feed was stopped) while it waited for
// its link. `wanted` is false while the page is locked waiting for an API key.
const feed = {
  source: null,
  lastEventId: "",
  retryMs: RECONNECT_MIN_MS,
  timer: 0,
  generation: 0,
  wanted: false,
  onLinked: () => {},
  onEvent: () => {},
};

function close() {
  feed.generation += 1;
  clearTimeout(feed.timer);
  if (feed.source) feed.source.close();
  feed.source = null;
}

// The next key may be another tenant's: its feed starts from the beginning, not from this one's place.
export function stopFeed() {
  close();
  feed.wanted = false;
  feed.lastEventId = "";
}

function scheduleReconnect() {
  setConnection("reconnecting", "Reconnecting…");
  const delay = feed.retryMs * (0.75 + Math.random() * 0.5);
  feed.retryMs = Math.min(feed.retryMs * 2, RECONNECT_MAX_MS);
  clearTimeout(feed.timer);
  feed.timer = setTimeout(connectFeed, delay);
}

function listen(source) {
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
  for (const name of EVENT_NAMES) {
    source.addEventListener(name, (event) => {
      if (feed.source !== source) return;
      if (event.lastEventId) feed.lastEventId = event.lastEventId;
      let data;
      try {
        data = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      feed.onEvent(name, data);
    });
  }
}

export async function connectFeed() {
  close();
  feed.wanted = true;
  const generation = ++feed.generation;
  const resuming = Boolean(feed.lastEventId);
  setConnection(resuming ? "reconnecting" : "connecting", resuming ? "Reconnecting…" : "Connecting…");
  let link;
  try {
    const response = await api("/events/link");
    link = (await response.json()).links.events;
  } catch (error) {
    if (generation === feed.generation && error.status !== 401) scheduleReconnect();
    return;
  }
  if (generation !== feed.generation) return;
  feed.onLinked();
  // A new EventSource cannot send Last-Event-ID; the server reads the same from the query.
  let url = link;
  if (feed.lastEventId) url += (url.includes("?") ? "&" : "?") + "lastEventId=" + encodeURIComponent(feed.lastEventId);
  const source = new EventSource(url);
  feed.source = source;
  listen(source);
}

// `onLinked` runs each time the server hands out a feed link, i.e. has accepted the key (or needs none);
// `onEvent(name, data)` gets each feed event, parsed.
export function initFeed({ onLinked, onEvent }) {
  feed.onLinked = onLinked;
  feed.onEvent = onEvent;
  window.addEventListener("online", () => {
    if (feed.wanted && !feed.source) {
      feed.retryMs = RECONNECT_MIN_MS;
      connectFeed();
    }
  });
}
