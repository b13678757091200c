"""`python -m jobs.capture --config FILE`: the `ray job submit` entrypoint (`xtrader capture FILE` uses the same
flags). Wiring only: the driver is `xtrader.driver` (`jobs.run.run`)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jobs.run import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, run_until_signalled
from xtrader.config import Capture
from xtrader.driver.until import StopWhen
from xtrader.errors import ConfigError


def load_config(path: str | os.PathLike[str], overrides: Mapping[str, Any] | None = None) -> Capture:
    """Read a YAML / JSON capture file, apply the environment (`XTRADER_<NAME>` and the documented aliases,
    see `xtrader.config.load_config`) and `overrides` (command-line values), validate the whole of it.

    Raises:
        ConfigError: unreadable file or invalid configuration (the message names the field and value).
    """
    from xtrader.config import load_config as load

    return load(Path(path), overrides=overrides)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m jobs.capture", description="Run an xtrader capture on Ray.")
    add_capture_arguments(parser)
    parser.add_argument("--config", required=True, help="capture configuration (YAML or JSON)")
    return parser


def add_capture_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by `python -m jobs.capture` and `xtrader capture`."""
    parser.add_argument("--duration", type=float, default=None, help="seconds to run, at most (default: until stopped)")
    add_until_arguments(parser)
    parser.add_argument("--summary-json", default=None, help="also write the final summary to this file")
    parser.add_argument("--latency-mode", choices=("realtime", "archival"), default=None, help="batching preset")
    parser.add_argument("--lossy", action="store_true", help="drop batches instead of blocking (counted)")
    parser.add_argument("--verbose", action="store_true", help="log actor output and details")


def add_until_arguments(parser: argparse.ArgumentParser) -> None:
    """Stop conditions (`xtrader capture`, `python -m jobs.capture`, `xtrader demo`)."""
    parser.add_argument(
        "--min-rows",
        type=int,
        default=0,
        metavar="N",
        help="stop once every table (trades, l2, bbo) of every venue has N rows from the venue's stream in every "
        "sink; with --duration, exit 1 if that did not happen in time",
    )
    parser.add_argument(
        "--until-books-valid",
        action="store_true",
        help="stop once every subscribed symbol has a valid order book (with --min-rows: both); "
        "with --duration, exit 1 if that did not happen in time",
    )


def until_from(args: argparse.Namespace) -> StopWhen | None:
    """The stop condition the flags ask for (None: none)."""
    if args.min_rows < 0:
        raise ConfigError(f"--min-rows: must be >= 0, got {args.min_rows}")
    until = StopWhen(min_rows=args.min_rows, books_valid=args.until_books_valid)
    return until if until else None


def until_met(result: Mapping[str, Any]) -> bool:
    """False when the run had a stop condition that did not hold before --duration ran out."""
    return bool(result.get("until", {}).get("met", True))


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if args.latency_mode:
        out["latency_mode"] = args.latency_mode
    if args.lossy:
        out["policy"] = "lossy"
    return out


def parser_note() -> str:
    """Which venues' frames this process (and the job's actors, which import the same tree) parses in C."""
    from xtrader.venues import binance_columns, deribit_columns, okx_columns

    built = {"Binance": binance_columns.COMPILED, "OKX": okx_columns.COMPILED, "Deribit": deribit_columns.COMPILED}
    missing = [name for name, compiled in built.items() if not compiled]
    if not missing:
        return "frames: the compiled parsers (Binance, OKX, Deribit)"
    return (
        f"frames: the Python parser for {', '.join(missing)} (the C extensions are not built here or, under `ray "
        "job submit --working-dir`, were not uploaded: see docs/guide.md, 'The compiled parsers on a cluster')"
    )


def run_file(path: str, args: argparse.Namespace) -> int:
    """Load, validate and run a capture file; the process exit status."""
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    try:
        capture = load_config(path, overrides_from(args))
        until = until_from(args)
    except ConfigError as exc:
        print(f"xtrader capture: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"xtrader capture: {parser_note()}", file=sys.stderr)
    result = run_until_signalled("xtrader capture", capture, args, until)
    if isinstance(result, int):
        return result
    return EXIT_OK if until_met(result) else EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_file(args.config, args)


if __name__ == "__main__":
    raise SystemExit(main())
