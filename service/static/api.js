// Every request to the service goes through api(): it sends the tab's API key and turns a refusal into an
// ApiError carrying the server's own message, which the page shows as it is.

const KEY_STORAGE = "ocr-service.api-key";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function readStoredKey() {
  try {
    return sessionStorage.getItem(KEY_STORAGE);
  } catch (_) {
    return null;
  }
}

// `key` is what requests send: kept here as well as in sessionStorage, which can be disabled.
// `onUnauthorized` is set once by the entry module: a 401 locks the whole page, which this module knows
// nothing of.
const session = { key: readStoredKey(), onUnauthorized: () => {} };

export function setKey(key) {
  try {
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    else sessionStorage.removeItem(KEY_STORAGE);
  } catch (_) {
    // Storage can be disabled; the key then lasts until the page is closed.
  }
  session.key = key;
}

export function whenUnauthorized(handler) {
  session.onUnauthorized = handler;
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

export async function api(path, init) {
  const headers = new Headers((init && init.headers) || {});
  const sentKey = session.key;
  if (sentKey) headers.set("Authorization", "Bearer " + sentKey);
  let response;
  try {
    response = await fetch(path, Object.assign({}, init, { headers, cache: "no-store" }));
  } catch (_) {
    throw new ApiError(0, "network_error", "The server could not be reached. Check the connection and try again.");
  }
  if (response.ok) return response;
  const error = await errorOf(response);
  // Without a key sent, the server's "key needed" is no error of the person's: ask without a message.
  if (response.status === 401) session.onUnauthorized(sentKey ? error.message : "");
  throw error;
}

export function jobUrl(job) {
  return (job.links && job.links.self) || "/jobs/" + encodeURIComponent(job.id);
}

export function resultUrl(job) {
  return (job.links && job.links.result) || jobUrl(job) + "/result";
}
