"""Storing one finished page within its document's text budget (MAX_DOCUMENT_TEXT_MB).

A page's record (`ocr:pages:<id>`, its fields and words, see service/ocr/record.py) goes in together
with the document's running total (`ocr:text-bytes:<id>`, a hash: each page's size and the `total`),
in one script. Sizes are the records' before compression, what a reader holds once it opened them. A
page that would take the total past the cap is not stored at all, so a job can never complete over
its cap, nor Redis hold more of it than the cap; the job fails with `text_too_large`. A page stored
again (its lease lapsed after a worker died) replaces its own size in the total rather than adding to it.

A page stored for the first time while its job lives is announced on the job's stream in the same
script: the job's next event id, a reference in its history, the page itself (without its words) on
the events channel (service/jobs/page_events.py). A page stored again is not announced again.
"""

from __future__ import annotations

import json

from redis.asyncio import Redis

from service import keys
from service.errors import TextTooLarge
from service.jobs.page_events import page_event_data
from service.jobs.store import JOB_HISTORY_EVENTS
from service.ocr import PageResult
from service.ocr.record import page_record, record_json

_STORE_PAGE = """
local pages, sizes, record_key, seq_key, events_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local number, record, size = ARGV[1], ARGV[2], tonumber(ARGV[3])
local cap = tonumber(ARGV[4])
local channel, job_id, tenant, history_len, event_data = ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8]), ARGV[9]
local first_time = redis.call('HEXISTS', pages, number) == 0
local total = tonumber(redis.call('HGET', sizes, 'total') or '0')
total = total - tonumber(redis.call('HGET', sizes, number) or '0') + size
if total > cap then
  return -1
end
redis.call('HSET', pages, number, record)
redis.call('HSET', sizes, number, size, 'total', total)
-- The page's keys share the job record's lifetime, as every write of the job's does (JobStore.write):
-- none while the job lives, the rest of it once it ended, none at all once the record is gone.
local ttl_ms = redis.call('PTTL', record_key)
for _, key in ipairs({pages, sizes}) do
  if ttl_ms == -2 then
    redis.call('DEL', key)
  elseif ttl_ms == -1 then
    redis.call('PERSIST', key)
  else
    redis.call('PEXPIRE', key, ttl_ms)
  end
end
-- Announced once, and only while the job lives: its stream has closed once it ended.
if first_time and ttl_ms == -1 then
  local seq = redis.call('INCR', seq_key)
  redis.call('RPUSH', events_key, '{"seq":' .. seq .. ',"event":"page","page":' .. number .. '}')
  redis.call('LTRIM', events_key, -history_len, -1)
  -- tseq 0: the tenant's feed carries no page events
  redis.call('PUBLISH', channel, '{"tenant":"' .. tenant .. '","id":"' .. job_id .. '","seq":' .. seq
    .. ',"tseq":0,"event":"page","data":' .. event_data .. '}')
end
return redis.call('HLEN', pages)
"""


async def store_page(redis: Redis, job_id: str, tenant: str, page: PageResult, *, max_document_bytes: int) -> int:
    """Store the page and announce it; the number of the document's pages now stored. Raises
    TextTooLarge instead of storing a page that would take the document's text past `max_document_bytes`."""
    event_data = json.dumps(page_event_data(job_id, page.to_dict()), separators=(",", ":"))
    script = redis.register_script(_STORE_PAGE)
    stored = int(
        await script(
            keys=[keys.pages(job_id), keys.text_bytes(job_id), keys.job(job_id), keys.seq(job_id), keys.events(job_id)],
            args=[
                str(page.number),
                page_record(page),
                len(record_json(page)),
                max_document_bytes,
                keys.EVENTS_CHANNEL,
                job_id,
                tenant,
                JOB_HISTORY_EVENTS,
                event_data,
            ],
        )
    )
    if stored < 0:
        raise TextTooLarge(
            f"the document has more than {max_document_bytes // (1024 * 1024)} MB of text (with page {page.number}); "
            "that is more than a document may keep"
        )
    return stored
