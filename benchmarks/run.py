"""The benchmark suite's one command: `.venv/bin/python -m benchmarks.run [--only NAME ...] [--quick]`.

It generates its inputs, starts its own redis-server on a free port and the processes each benchmark
needs, runs the benchmarks in order, stops everything it started, and writes BENCHMARKS.md (a full run)
or benchmarks/.results/BENCHMARKS.quick.md (`--quick`).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys
import time
import traceback
from pathlib import Path

from benchmarks import analysis
from benchmarks.common import Context
from benchmarks.processes import (
    RESULTS,
    ROOT,
    STOPPING,
    install_signal_handlers,
    raise_open_file_limit,
    redis_server,
    stop_all,
)
from benchmarks.report import Section, load_json, machine, now_utc, render_markdown, save_json

logger = logging.getLogger("benchmarks")

# name -> module; the order is the order they run and are reported in.
BENCHMARKS = {
    "enqueue": "benchmarks.bench_enqueue",
    "throughput": "benchmarks.bench_throughput",
    "text-layer": "benchmarks.bench_text_layer",
    "event-latency": "benchmarks.bench_event_latency",
    "split": "benchmarks.bench_split",
    "fairness": "benchmarks.bench_fairness",
    "sse-fanout": "benchmarks.bench_sse_fanout",
    "streams": "benchmarks.bench_streams",
    "loop-lag": "benchmarks.bench_loop_lag",
    "celery": "benchmarks.bench_celery",
    "degraded": "benchmarks.bench_degraded",
    "outputs": "benchmarks.bench_outputs",
    "first-page": "benchmarks.bench_first_page",
    "profile": "benchmarks.bench_profile",
    "soak": "benchmarks.soak",
    "memory": "benchmarks.bench_memory",
}
# Run only when named (`--only soak`): many minutes of traffic, more than the rest of the suite together.
ON_REQUEST = {"soak"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help=f"run only these benchmarks (repeatable or comma-separated): {', '.join(BENCHMARKS)}; "
                             f"{', '.join(sorted(ON_REQUEST))} only when named")
    parser.add_argument("--quick", action="store_true",
                        help="smaller inputs and fewer repeats; writes benchmarks/.results/BENCHMARKS.quick.md")
    parser.add_argument("--output", type=Path, help="where to write the report (default BENCHMARKS.md)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the report from the stored results of the last run, running nothing")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.list:
        for name, module in BENCHMARKS.items():
            doc = (importlib.import_module(module).__doc__ or "").strip().splitlines()[0]
            print(f"{name:14} {doc}")
        return 0
    selected = [name for chunk in args.only for name in chunk.split(",") if name] or [
        name for name in BENCHMARKS if name not in ON_REQUEST
    ]
    unknown = [name for name in selected if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    install_signal_handlers()
    raise_open_file_limit()
    stem = "quick" if args.quick else "latest"
    store = RESULTS / f"{stem}.json"
    output = args.output or (RESULTS / "BENCHMARKS.quick.md" if args.quick else ROOT / "BENCHMARKS.md")
    logdir = RESULTS / "logs" / time.strftime("%Y%m%d-%H%M%S")
    previous, extra = load_json(store)
    by_key = {s.key: s for s in previous}
    if args.report_only:
        sections = sorted(by_key.values(), key=lambda s: _order(s.key))
        write_report(output, sections, extra.get("machine", machine()), args)
        logger.info("report: %s", output)
        return 0
    machine_info = machine()
    started = time.monotonic()
    try:
        with redis_server(logdir) as server:
            ctx = Context(server=server, logdir=logdir, quick=args.quick)
            for name in selected:
                if STOPPING.is_set():
                    break
                section = run_one(name, ctx)
                by_key[section.key] = section
                sections = sorted(by_key.values(), key=lambda s: _order(s.key))
                save_json(store, sections, {"machine": machine_info})
                write_report(output, sections, machine_info, args)
    finally:
        stop_all()
    logger.info("done in %.0f s; report: %s", time.monotonic() - started, output)
    return 0


def _order(key: str) -> tuple[int, str]:
    return (int(key), "") if key.isdigit() else (99, key)


def run_one(name: str, ctx: Context) -> Section:
    module = importlib.import_module(BENCHMARKS[name])
    logger.info("== %s", name)
    started = time.monotonic()
    try:
        section: Section = asyncio.run(module.run(ctx))
    except Exception as exc:  # noqa: BLE001 - one broken benchmark must not lose the others' figures
        traceback.print_exc()
        key = getattr(module, "KEY", name)
        section = Section(key, getattr(module, "TITLE", name), error=f"{exc.__class__.__name__}: {exc}")
    section.date = now_utc()
    section.seconds = time.monotonic() - started
    section.quick = ctx.quick
    for figure in section.figures:
        logger.info("   %-60s %10.4g %s %s", figure.label, figure.value, figure.unit,
                    "" if figure.passed is None else ("ok" if figure.passed else "MISSES TARGET"))
    logger.info("   (%.0f s)", section.seconds)
    return section


def write_report(output: Path, sections: list[Section], machine_info: dict[str, str], args: argparse.Namespace) -> None:
    command = ".venv/bin/python -m benchmarks.run" + (" --quick" if args.quick else "")
    text = render_markdown(sections, machine_info=machine_info, command=command,
                           analysis=analysis.where_the_time_goes(sections),
                           run_date=max((s.date for s in sections if s.date), default=now_utc()))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
