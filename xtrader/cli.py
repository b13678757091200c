"""The `xtrader` command line: demo | capture | simulate | verify | bench | status."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    """The whole CLI definition (docs/cli.md is generated from it)."""
    from xtrader.bench.report import ENTRIES

    parser = argparse.ArgumentParser(prog="xtrader", description="Crypto market-data capture on Ray.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    verify = commands.add_parser(
        "verify",
        help="replay a capture file through the parsers and book sync",
        description="Replay a capture (.jsonl) through the venue parser, book sync and arbiter. "
        "Exit 0: clean; 1: a gap, checksum failure, bbo price mismatch or crossed book; 2: bad input.",
    )
    verify.add_argument("capture", metavar="CAPTURE.jsonl", help="capture file in the exchange-captures format")
    verify.add_argument("--venue", help="venue name (detected from the URLs when omitted)")
    verify.add_argument("--json", action="store_true", help="print exactly one JSON object")

    simulate = commands.add_parser(
        "simulate",
        help="run the local exchange simulator",
        description="Start protocol-faithful Binance, OKX and Deribit servers on loopback.",
        add_help=False,
    )
    simulate.add_argument("args", nargs=argparse.REMAINDER, help="simulator options (see xtrader simulate --help)")

    from jobs.capture import add_capture_arguments, add_until_arguments

    capture = commands.add_parser(
        "capture",
        help="run a capture from a configuration file on Ray",
        description="Validate the configuration, start the actors on a local Ray (or cluster.address), "
        "capture until --duration, a stop condition (--min-rows, --until-books-valid) or SIGINT/SIGTERM, drain, "
        "flush and print the summary. Exit 0: done; 1: the stop condition did not hold within --duration; "
        "2: invalid configuration; 3: placement groups could not be placed.",
    )
    capture.add_argument("config", metavar="FILE", help="capture configuration (YAML or JSON)")
    add_capture_arguments(capture)

    demo = commands.add_parser(
        "demo",
        help="capture the local simulator's markets into Parquet (no network, no config)",
        description="Start the simulator (every simulated venue, a few symbols each) and a local Ray, capture "
        "trades, l2 and bbo into Parquet, print the summary (written vs sent, books vs the simulator) and a query.",
    )
    demo.add_argument(
        "--duration", type=float, default=20.0, help="seconds to capture, at most with a stop condition (default 20)"
    )
    add_until_arguments(demo)
    demo.add_argument("--out", default="./xtrader-data", help="Parquet dataset root (default ./xtrader-data)")
    demo.add_argument("--summary-json", default=None, help="also write the summary to this file")
    demo.add_argument("--faults", default="", help="simulator fault SPEC, e.g. drop_rate=0.001")
    demo.add_argument("--questdb", default=None, metavar="CONF", help="also write to QuestDB (client conf string)")
    demo.add_argument("--symbols", type=int, default=3, help="symbols per venue (default 3)")
    demo.add_argument("--rate", type=float, default=50.0, help="market updates per second per venue (default 50)")
    demo.add_argument(
        "--venue-option",
        action="append",
        default=[],
        metavar="VENUE.NAME=VALUE",
        help="a simulator venue option (repeatable), e.g. okx.initial_snapshot=0: OKX books without the "
        "websocket snapshot, built from the REST book",
    )
    demo.add_argument(
        "--redundancy",
        type=int,
        default=1,
        metavar="N",
        help="connections per stream (default 1; 2: the arbiter "
        "keeps the first copy of each message, so a lost connection loses nothing)",
    )
    demo.add_argument(
        "--chaos",
        default="",
        metavar="SPEC",
        help="process faults injected while it runs, e.g. kill_connector_every_s=7,kill_sink_every_s=11,"
        "kill_book_every_s=13,kill_arbiter_every_s=17,questdb_down_s=5@10,parquet_unwritable_s=4@15,sigterm_at_s=25 "
        "(killed actors are restarted by Ray; D@T: for D s from T s on, the sink's storage fails and the data waits "
        "in its spill or log; each fault is an events row, counted in the summary's chaos; one_at_a_time=1: each fault "
        "waits until the capture recovered from the previous one)",
    )
    demo.add_argument("--verbose", action="store_true", help="log actor output and details")

    bench = commands.add_parser(
        "bench",
        help="benchmark xtrader against the machine's limits and cryptofeed",
        description="Run, one after the other, on the simulator's Binance USD-M depth + trade feed: limit_recv "
        "(bare websocket client), limit_parse (orjson.loads), hot_path (parse + batch + book sync in memory), "
        "xtrader_e2e (the whole pipeline on a local Ray into Parquet, an actor per stage), xtrader_e2e_fused (the "
        "same with every stage in one actor process: pipeline.fused) and cryptofeed (installed on first use in "
        "its own virtual environment). Reports msgs/s, msgs per CPU-second, latency at 10,000 msg/s and ratios.",
    )
    bench.add_argument("--seconds", type=float, default=10.0, help="measuring time per entry (default 10)")
    bench.add_argument("--warmup", type=float, default=10.0, help="seconds before latency is measured (default 10)")
    bench.add_argument(
        "--latency-mode",
        choices=("realtime", "archival"),
        default="realtime",
        help="batching preset of hot_path and xtrader_e2e (default realtime)",
    )
    bench.add_argument(
        "--wal",
        choices=("os", "batch", "off"),
        default="os",
        help="xtrader_e2e's Parquet write-ahead log (parquet.wal; default os): compare runs to see what "
        "'acknowledged means durable' costs",
    )
    bench.add_argument(
        "--ws-transport",
        choices=("picows", "websockets"),
        default="picows",
        help="xtrader_e2e's connector websocket library (pipeline.ws_transport; default picows)",
    )
    bench.add_argument("--json", action="store_true", help="print exactly one JSON object")
    bench.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=ENTRIES,
        help="leave an entry out (repeatable); it is reported as null",
    )
    from xtrader.status import build_parser as status_arguments

    status_arguments(
        commands.add_parser(
            "status",
            help="show a running capture's streams, totals and last minute's events",
            description="Attach to the running capture (its controller actor) and print one row per "
            "(venue, table, symbol, connection): state, rows/s over the last 10 s, rows, last message age, gaps, "
            "resyncs, reconnects, latency p99 and node; then totals and the last minute's events. "
            "Exit 0: shown; 1: no capture running.",
        )
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["simulate"]:
        from xtrader.simulator.cli import main as simulate_main

        return simulate_main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.command == "verify":
        return _verify(args)
    if args.command == "capture":
        from jobs.capture import run_file

        return run_file(args.config, args)
    if args.command == "status":
        from xtrader.status import main as status_main

        return status_main(args)
    if args.command == "demo":
        from jobs.demo import run_demo

        return run_demo(args)
    if args.command == "bench":
        return _bench(args)
    return 2


def _bench(args: argparse.Namespace) -> int:
    from xtrader.bench.report import text
    from xtrader.bench.runner import run

    result = run(args.seconds, set(args.skip), args.warmup, args.latency_mode, args.wal, args.ws_transport)
    print(json.dumps(result, separators=(",", ":")) if args.json else text(result), flush=True)
    return 1 if result["errors"] else 0


def _verify(args: argparse.Namespace) -> int:
    from xtrader.verify import VerifyInputError, verify

    try:
        result = verify(args.capture, args.venue)
    except VerifyInputError as exc:
        print(f"xtrader verify: {exc}", file=sys.stderr)
        return 2
    summary = result.summary()
    if args.json:
        print(json.dumps(summary, separators=(",", ":")))
    else:
        books = summary["books"]
        print(
            f"{summary['venue']}: {summary['messages']} messages, {summary['rejects']} rejects, rows {summary['rows']}"
        )
        print(
            f"books: {books['updates_applied']} updates applied, {books['gaps']} gaps, "
            f"checksums {books['checksum_ok']} ok / {books['checksum_failed']} failed / "
            f"{books['checksum_skipped']} skipped, bbo cross-checks {books['bbo_cross_checks']} "
            f"({books['bbo_mismatches']} price mismatches, {books['bbo_size_diffs']} size-only differences), "
            f"{books['crossed']} crossed"
        )
        print(f"arbiter: {summary['arbiter']}")
    return 0 if result.clean() else 1


if __name__ == "__main__":
    raise SystemExit(main())
