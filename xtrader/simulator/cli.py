"""``xtrader simulate``: run the simulator until SIGINT/SIGTERM, announcing its URLs as one JSON line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

import orjson

from .server import Simulator


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="xtrader simulate", description="Run a local exchange simulator.")
    p.add_argument(
        "--venues", default="binance,binance_futures", help="comma-separated: binance,binance_futures,okx,deribit"
    )
    p.add_argument("--symbols", type=int, default=3, help="symbols per venue")
    p.add_argument("--rate", type=float, default=100.0, help="market steps per second per venue")
    p.add_argument("--replay", action="append", default=None, help="capture .jsonl file to replay (repeatable)")
    p.add_argument("--speed", type=float, default=None, help="replay speed factor (omit: as fast as possible)")
    p.add_argument("--faults", default=None, help="fault SPEC, e.g. drop_rate=0.01,disconnect_after_s=30")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="first port (0: ephemeral)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--ping-interval", type=float, default=None, help="override server ping interval (s)")
    p.add_argument("--pong-timeout", type=float, default=None, help="override pong timeout (s)")
    p.add_argument(
        "--pregenerate",
        type=int,
        default=0,
        metavar="N",
        help="generate and encode N market steps per venue before serving",
    )
    p.add_argument(
        "--venue-option",
        action="append",
        default=[],
        metavar="VENUE.NAME=VALUE",
        help="a venue-specific option (repeatable), e.g. okx.checksum=1",
    )
    return p


def parse_venue_options(items: list[str]) -> dict[str, dict[str, str]]:
    """`VENUE.NAME=VALUE` items (``--venue-option``) -> {venue: {name: value}}.

    Raises:
        ValueError: an item is not of that shape.
    """
    out: dict[str, dict[str, str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        venue, dot, name = key.strip().partition(".")
        if not (sep and dot and venue and name):
            raise ValueError(f"--venue-option {item!r}: expected VENUE.NAME=VALUE")
        out.setdefault(venue, {})[name] = value.strip()
    return out


def main(argv: list[str]) -> int:
    """Entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    venues = (
        []
        if args.replay and args.venues == "binance,binance_futures"
        else [v.strip() for v in args.venues.split(",") if v.strip()]
    )
    try:
        venue_options = parse_venue_options(args.venue_option)
        sim = Simulator(
            venues=venues,
            symbols=args.symbols,
            rate=args.rate,
            seed=args.seed,
            faults=args.faults,
            replay=args.replay,
            speed=args.speed,
            host=args.host,
            port=args.port,
            ping_interval_s=args.ping_interval,
            pong_timeout_s=args.pong_timeout,
            venue_options=venue_options,
            pregenerate=args.pregenerate,
        )
    except (ValueError, OSError) as exc:
        print(f"xtrader simulate: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(sim))
    except OSError as exc:
        print(f"xtrader simulate: {exc}", file=sys.stderr)
        return 1
    return 0


async def _serve(sim: Simulator) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with sim:
        announce: dict[str, object] = {name: urls for name, urls in sim.urls.items()}
        announce.update(stats=sim.stats_url, ca_file=sim.ca_file, symbols=sim.symbols)
        sys.stdout.write(orjson.dumps(announce).decode() + "\n")
        sys.stdout.flush()
        await stop.wait()
