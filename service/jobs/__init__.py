"""The domain, shared by both processes: the job record and its transitions, submitting, results,
the content cache, and the events that changes publish. Nothing here is HTTP or arq-worker code."""
