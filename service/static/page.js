// The page's fixed elements, and the ways any module speaks to the person using it. No state lives here:
// `ui` only names elements that index.html always has.

const $ = (id) => document.getElementById(id);

export const ui = {
  connection: $("connection"),
  connectionText: $("connection-text"),
  auth: $("auth"),
  keyForm: $("key-form"),
  keyInput: $("api-key"),
  keyError: $("key-error"),
  upload: $("upload"),
  uploadTitle: $("upload-title"),
  uploadForm: $("upload-form"),
  uploadError: $("upload-error"),
  fileInput: $("file-input"),
  dropzone: $("dropzone"),
  lang: $("opt-lang"),
  dpi: $("opt-dpi"),
  force: $("opt-force"),
  pages: $("opt-pages"),
  notice: $("notice"),
  noticeText: $("notice-text"),
  noticeClose: $("notice-close"),
  jobsTitle: $("jobs-title"),
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
  downloadHocr: $("download-hocr"),
  downloadAlto: $("download-alto"),
  downloadWords: $("download-words"),
};

export function setConnection(state, text) {
  ui.connection.dataset.state = state;
  ui.connectionText.textContent = text;
}

export function announce(text) {
  // Clear first so that the same words said twice are still read out.
  ui.announcer.textContent = "";
  setTimeout(() => {
    ui.announcer.textContent = text;
  }, 50);
}

export function showNotice(text) {
  ui.noticeText.textContent = text;
  ui.notice.hidden = false;
}

export function initNotice() {
  ui.noticeClose.addEventListener("click", () => {
    ui.notice.hidden = true;
  });
}
