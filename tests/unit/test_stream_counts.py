"""The total of streams across web processes: fresh reports count, stale ones drop out, ours is live."""

from __future__ import annotations

from service.ops.stream_counts import STALE_AFTER_S, StreamCounts, StreamTotals


def test_totals_sum_fresh_reports_and_name_the_stale_ones() -> None:
    counts = StreamCounts(redis=None, count=lambda: 7)  # type: ignore[arg-type]  # no Redis is used
    now = 1_000_000.0
    reports = {
        counts.process_id.encode(): b"3 999990",  # our own, as last reported: the live 7 counts instead
        b"web-b:12:aa": f"5 {now - 2:.0f}".encode(),
        b"web-c:13:bb": f"40 {now - STALE_AFTER_S - 1:.0f}".encode(),  # gone quiet
        b"web-d:14:cc": b"garbage",
    }
    totals, stale = counts.totals(reports, now)
    assert totals == StreamTotals(here=7, everywhere=12, processes=2)
    assert sorted(stale) == ["web-c:13:bb", "web-d:14:cc"]
