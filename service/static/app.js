// The upload page's entry module: it joins the modules up and starts the feed. Each module owns its own
// state; this one holds none.
//
// The job list is driven by the tenant's event feed alone: the page never polls job status. Server data
// (file names, text, messages) is untrusted and only ever goes into the page through textContent and
// attributes, never as HTML.

import { whenUnauthorized } from "./api.js";
import { askForKey, initKeyForm, keyAccepted } from "./auth.js";
import { connectFeed, initFeed, stopFeed } from "./feed.js";
import { applyFeedEvent, forgetJobs, initJobList, showDefaultEmptyText, updateCount } from "./jobs.js";
import { initNotice } from "./page.js";
import { initResultView } from "./result.js";
import { initUploads } from "./uploads.js";

whenUnauthorized((message) => {
  // The next key may be another tenant's: nothing of this one's may stay on the page.
  stopFeed();
  forgetJobs("Enter an API key to see your jobs.");
  askForKey(message);
});

initFeed({
  onLinked: () => {
    if (keyAccepted()) showDefaultEmptyText();
  },
  onEvent: applyFeedEvent,
});
initKeyForm(connectFeed);
initNotice();
initJobList();
initUploads();
initResultView();

updateCount();
connectFeed();
