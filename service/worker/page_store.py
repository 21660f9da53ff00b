"""Storing finished pages within their document's text budget (MAX_DOCUMENT_TEXT_MB).

A page's record (`ocr:pages:<id>`, its fields and words, see service/ocr/record.py) goes in together
with the document's running total (`ocr:text-bytes:<id>`, a hash: each page's size and the `total`),
in one script. Sizes are the records' before compression, what a reader holds once it opened them. A
page that would take the total past the cap is not stored at all, so a job can never complete over
its cap, nor Redis hold more of it than the cap; the job fails with `text_too_large`. A page stored
again (its lease lapsed after a worker died) replaces its own size in the total rather than adding to it.

A page stored for the first time while its job lives is announced on the job's stream in the same
script: the job's next event id, a reference in its history, the page itself (without its words) on
the events channel (service/jobs/page_events.py). A page stored again is not announced again. Several
pages of a text-layer job's unit (service/jobs/schedule.py) go in one call, stored and announced in
their order; the first such page stored marks its job for claims of TEXT_LAYER_BATCH pages.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from redis.asyncio import Redis

from service import keys
from service.errors import TextTooLarge
from service.jobs.page_events import page_event_data
from service.jobs.schedule import TEXT_LAYER_BATCH
from service.jobs.store import JOB_HISTORY_EVENTS
from service.ocr import PageResult
from service.ocr.record import PackedPage, pack

# ARGV: cap, channel, job id, tenant, history length, pages a claim may take of a text-layer job, then
# per page: number, record, size, source, event data. Returns the pages stored now, or -1 - the number
# of the page that would have taken the document past its cap (the pages before it are stored).
_STORE_PAGES = """
local pages, sizes, record_key, seq_key, events_key, batch_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local cap, channel, job_id, tenant, history_len = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local ttl_ms = redis.call('PTTL', record_key)
local over = nil
for i = 7, #ARGV, 5 do
  local number, record, size, source, event_data = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3], ARGV[i + 4]
  local first_time = redis.call('HEXISTS', pages, number) == 0
  local total = tonumber(redis.call('HGET', sizes, 'total') or '0')
  total = total - tonumber(redis.call('HGET', sizes, number) or '0') + size
  if total > cap then
    over = number
    break
  end
  redis.call('HSET', pages, number, record)
  redis.call('HSET', sizes, number, size, 'total', total)
  -- Announced once, and only while the job lives: its stream has closed once it ended.
  if first_time and ttl_ms == -1 then
    local seq = redis.call('INCR', seq_key)
    redis.call('RPUSH', events_key, '{"seq":' .. seq .. ',"event":"page","page":' .. number .. '}')
    -- tseq 0: the tenant's feed carries no page events
    redis.call('PUBLISH', channel, '{"tenant":"' .. tenant .. '","id":"' .. job_id .. '","seq":' .. seq
      .. ',"tseq":0,"event":"page","data":' .. event_data .. '}')
    if source == 'text-layer' then redis.call('HSET', batch_key, job_id, ARGV[6]) end
  end
end
redis.call('LTRIM', events_key, -history_len, -1)
-- The page's keys share the job record's lifetime, as every write of the job's does (JobStore.write):
-- none while the job lives, the rest of it once it ended, none at all once the record is gone.
for _, key in ipairs({pages, sizes}) do
  if ttl_ms == -2 then
    redis.call('DEL', key)
  elseif ttl_ms == -1 then
    redis.call('PERSIST', key)
  else
    redis.call('PEXPIRE', key, ttl_ms)
  end
end
if over then return -1 - tonumber(over) end
return redis.call('HLEN', pages)
"""


async def store_page(redis: Redis, job_id: str, tenant: str, page: PageResult, *, max_document_bytes: int) -> int:
    """Store the page and announce it; the number of the document's pages now stored. Raises
    TextTooLarge instead of storing a page that would take the document's text past `max_document_bytes`."""
    return await store_pages(redis, job_id, tenant, [pack(page)], max_document_bytes=max_document_bytes)


async def store_pages(
    redis: Redis, job_id: str, tenant: str, pages: Sequence[PackedPage], *, max_document_bytes: int
) -> int:
    """Store the pages and announce them, in their order, as store_page() does each."""
    args: list[str | bytes | int] = [max_document_bytes, keys.EVENTS_CHANNEL, job_id, tenant, JOB_HISTORY_EVENTS]
    args.append(TEXT_LAYER_BATCH)
    for page in pages:
        event_data = json.dumps(page_event_data(job_id, page.fields), separators=(",", ":"))
        args += [page.number, page.record, page.size, page.source, event_data]
    script = redis.register_script(_STORE_PAGES)
    stored = int(
        await script(
            keys=[
                keys.pages(job_id),
                keys.text_bytes(job_id),
                keys.job(job_id),
                keys.seq(job_id),
                keys.events(job_id),
                keys.SCHED_BATCH,
            ],
            args=args,
        )
    )
    if stored < 0:
        raise TextTooLarge(
            f"the document has more than {max_document_bytes // (1024 * 1024)} MB of text (with page {-1 - stored}); "
            "that is more than a document may keep"
        )
    return stored
