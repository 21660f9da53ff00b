// The API-key prompt. A server without keys never shows it; with keys, the page asks once per tab session
// (the key is kept in sessionStorage by api.js) and again whenever the server refuses the key.

import { setKey } from "./api.js";
import { announce, setConnection, ui } from "./page.js";

export function askForKey(message) {
  setKey(null);
  setConnection("locked", "API key needed");
  ui.auth.hidden = false;
  ui.upload.hidden = true;
  ui.keyError.textContent = message;
  ui.keyError.hidden = !message;
  ui.keyInput.setAttribute("aria-invalid", message ? "true" : "false");
  ui.keyInput.value = "";
  if (!ui.dialog.open) ui.keyInput.focus();
}

// Whether the prompt was showing: the caller then restores what the locked page had replaced.
export function keyAccepted() {
  if (ui.auth.hidden) return false;
  ui.auth.hidden = true;
  ui.upload.hidden = false;
  ui.keyInput.value = "";
  ui.uploadTitle.focus();
  announce("API key accepted.");
  return true;
}

// `tryKey` runs with the key stored; the server's answer to it decides whether it was right.
export function initKeyForm(tryKey) {
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
    setKey(key);
    ui.keyError.hidden = true;
    ui.keyInput.setAttribute("aria-invalid", "false");
    tryKey();
  });
}
