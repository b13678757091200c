"""`xtrader demo`: the simulator's markets on every simulated venue, captured into Parquet on a local Ray."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping
from pathlib import Path

from xtrader.config import (
    Capture,
    Cluster,
    Metrics,
    OptionValue,
    ParquetSink,
    Pipeline,
    QuestDBSink,
    Simulator,
    Sinks,
    Stream,
)
from xtrader.errors import ConfigError

#: the venues the demo captures, when the simulator serves them
DEMO_VENUES = ("binance", "binance_futures", "okx", "deribit")


def demo_capture(
    out: str,
    *,
    duration_s: float | None = None,
    symbols: int = 3,
    rate: float = 50.0,
    faults: str = "",
    questdb: str | None = None,
    venues: tuple[str, ...] = DEMO_VENUES,
    seed: int = 1,
    options: Mapping[str, Mapping[str, OptionValue]] | None = None,
    redundancy: int = 1,
) -> Capture:
    """The demo's configuration: every simulated venue of `venues`, trades + l2 + bbo, Parquet under `out`.

    `options`: simulator venue options ({"okx": {"initial_snapshot": "0"}}), as `--venue-option` gives them.
    """
    from xtrader.simulator.registry import VENUES as SIMULATED
    from xtrader.simulator.server import Simulator as Sim

    served = tuple(v for v in venues if v in SIMULATED)
    if not served:
        raise ConfigError(f"the simulator serves none of {', '.join(venues)}")
    names = Sim(venues=served, symbols=symbols, rate=rate, seed=seed).symbols  # not started: just the markets
    streams = tuple(
        Stream(venue=v, symbols=tuple(names[v]), tables=("trades", "l2", "bbo"), redundancy=redundancy) for v in served
    )
    sinks = Sinks(
        parquet=ParquetSink(root=out),
        questdb=QuestDBSink(enabled=True, conf=questdb, spill_dir=str(Path(out) / ".spill"))
        if questdb
        else QuestDBSink(),
    )
    return Capture(
        name="demo",
        streams=streams,
        pipeline=Pipeline(connector_cpus=1.0, validate_symbols=True),
        sinks=sinks,
        cluster=Cluster(num_cpus=max(8, len(streams) * (redundancy + 1) + 2), placement_timeout_s=60.0),
        metrics=Metrics(port=0),
        simulator=Simulator(
            symbols=symbols,
            rate=rate,
            seed=seed,
            faults=faults,
            options={v: dict(o) for v, o in (options or {}).items()},
        ),
    )


def query_hint(out: str) -> str:
    """A ready-to-run command reading the captured trades back."""
    root = str(Path(out) / "trades")
    return (
        'python -c "import pyarrow.dataset as ds; '
        f"t = ds.dataset('{root}', partitioning='hive', format='parquet').to_table().unify_dictionaries(); "
        "print(t.group_by(['exchange', 'symbol']).aggregate([('price', 'count'), ('price', 'mean')]))\""
    )


def run_demo(args: argparse.Namespace) -> int:
    from jobs.capture import until_from, until_met
    from jobs.run import run_until_signalled

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    from pydantic import ValidationError

    from xtrader.chaos import parse_chaos
    from xtrader.simulator.cli import parse_venue_options

    try:
        capture = demo_capture(
            args.out,
            symbols=args.symbols,
            rate=args.rate,
            faults=args.faults,
            questdb=args.questdb,
            options=parse_venue_options(args.venue_option),
            redundancy=args.redundancy,
        )
        until = until_from(args)
        chaos = parse_chaos(args.chaos)
    except ValidationError as exc:
        print(
            f"xtrader demo: {'; '.join(str(e['msg']).removeprefix('Value error, ') for e in exc.errors())}",
            file=sys.stderr,
        )
        return 2
    except (ConfigError, ValueError) as exc:
        print(f"xtrader demo: {exc}", file=sys.stderr)
        return 2
    venues = ", ".join(s.venue for s in capture.streams)
    limit = f"until {_condition(args)} (at most {args.duration:g} s)" if until else f"{args.duration:g} s"
    print(f"xtrader demo: simulator ({venues}), local Ray, {limit} into {args.out}", flush=True)
    result = run_until_signalled("xtrader demo", capture, args, until, chaos)
    if isinstance(result, int):
        return result
    from xtrader.driver.summary_view import written_ok

    ok = all(written_ok(entry) is not False for venues_ in result["tables"].values() for entry in venues_.values())
    books = result["books"]
    print(
        f"xtrader demo: written == sent + rest for every table: {'yes' if ok else 'NO'}; "
        f"books matching the simulator: {books['matched']}/{books['checked']}"
    )
    print("query the trades:\n  " + query_hint(args.out))
    return 0 if ok and until_met(result) else 1


def _condition(args: argparse.Namespace) -> str:
    parts = [f"{args.min_rows} rows per table and venue"] if args.min_rows else []
    if args.until_books_valid:
        parts.append("every book valid")
    return " and ".join(parts)
