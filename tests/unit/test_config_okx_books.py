"""Configuration of OKX book sources, login-only channels and simulator venue options (issue 13)."""

from __future__ import annotations

from typing import Any

import pytest

from xtrader.config import parse_config
from xtrader.errors import ConfigError
from xtrader.plan import build_plan


def stream(**fields: Any) -> dict[str, Any]:
    return {"venue": "okx", "symbols": ["BTC-USDT"], **fields}


def error_of(*streams: dict[str, Any], **fields: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config({"streams": list(streams), **fields}, environ={})
    return str(caught.value)


def test_okx_book_source_defaults_to_auto_and_reaches_the_connectors() -> None:
    config = parse_config({"streams": [stream()]}, environ={})
    assert config.streams[0].book_source is None and config.streams[0].ws_snapshot_wait_s == 1.0
    (spec,) = build_plan(config).connectors
    assert (spec.book_source, spec.ws_snapshot_wait_s) == ("auto", 1.0)
    config = parse_config({"streams": [stream(book_source="rest", ws_snapshot_wait_s=0.25)]}, environ={})
    (spec,) = build_plan(config).connectors
    assert (spec.book_source, spec.ws_snapshot_wait_s) == ("rest", 0.25)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"book_source": "sometimes"}, "streams[0].book_source: Input should be 'auto', 'ws' or 'rest'"),
        (
            {"venue": "binance", "symbols": ["BTCUSDT"], "book_source": "ws"},
            "book_source 'ws': binance books come only from rest",
        ),
        (
            {"venue": "deribit", "symbols": ["BTC-PERPETUAL"], "book_source": "rest"},
            "book_source 'rest': deribit books come only from ws",
        ),
        ({"ws_snapshot_wait_s": 0}, "streams[0].ws_snapshot_wait_s: Input should be greater than 0"),
    ],
)
def test_bad_book_sources_are_rejected(fields: dict[str, Any], expected: str) -> None:
    assert expected in error_of(stream(**fields))


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"name": "okx-tbt", "channels": {"l2": "books-l2-tbt"}},
            "streams[0]: stream 'okx-tbt': okx: channel books-l2-tbt needs a logged-in account of fee tier VIP5",
        ),
        (
            {"channels": {"l2": "books50-l2-tbt"}},
            "streams[0]: stream 'okx': okx: channel books50-l2-tbt needs a logged-in account of fee tier VIP4",
        ),
        (
            {"venue": "deribit", "symbols": ["BTC-PERPETUAL"], "channels": {"l2": "raw"}},
            "stream 'deribit': deribit: channel book.BTC-PERPETUAL.raw (interval raw) needs an authenticated",
        ),
        (
            {"venue": "deribit", "symbols": ["BTC-PERPETUAL"], "channels": {"trades": "raw"}},
            "deribit: channel trades.BTC-PERPETUAL.raw (interval raw) needs an authenticated",
        ),
        (
            {"venue": "deribit", "symbols": ["BTC-PERPETUAL"], "channels": {"l2": "none.10.raw"}},
            "deribit: channel book.BTC-PERPETUAL.none.10.raw (interval raw)",
        ),
    ],
)
def test_login_only_channels_are_rejected_naming_the_stream(fields: dict[str, Any], expected: str) -> None:
    message = error_of(stream(**fields))
    assert expected in message and "this client does not log in" in message


def test_public_channel_variants_stay_allowed() -> None:
    for fields in (
        {"channels": {"l2": "books5"}},
        {"venue": "deribit", "symbols": ["BTC-PERPETUAL"], "channels": {"l2": "100ms", "trades": "agg2"}},
    ):
        parse_config({"streams": [stream(**fields)]}, environ={})


def test_simulator_venue_options_are_checked_against_the_simulated_venue() -> None:
    config = parse_config(
        {"streams": [stream()], "simulator": {"options": {"okx": {"initial_snapshot": 0}}}}, environ={}
    )
    assert config.simulator is not None and config.simulator.options == {"okx": {"initial_snapshot": 0}}
    assert "simulator.options: venue 'okx' has no option 'nope'" in error_of(
        stream(), simulator={"options": {"okx": {"nope": 1}}}
    )
    assert "simulator.options: unknown venue 'kraken'" in error_of(stream(), simulator={"options": {"kraken": {}}})


def test_demo_venue_options_reach_the_simulator_of_the_capture() -> None:
    from jobs.demo import demo_capture
    from xtrader.cli import build_parser
    from xtrader.driver.simthread import simulator_for
    from xtrader.simulator.cli import parse_venue_options

    args = build_parser().parse_args(
        ["demo", "--venue-option", "okx.initial_snapshot=0", "--venue-option", "okx.nochange_s=5"]
    )
    options = parse_venue_options(args.venue_option)
    capture = demo_capture("/tmp/unused", symbols=1, venues=("okx",), options=options)
    assert capture.simulator is not None and capture.simulator.options == {
        "okx": {"initial_snapshot": "0", "nochange_s": "5"}
    }
    sim = simulator_for(capture)
    assert sim is not None
    okx = sim.sim.venues["okx"]
    assert okx.initial_snapshot is False and okx.nochange_s == 5.0  # type: ignore[attr-defined]
    sim.loop.close()


def test_demo_rejects_a_bad_venue_option_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    from xtrader.cli import main

    assert main(["demo", "--venue-option", "okx.initial_snapshots=0"]) == 2
    assert "venue 'okx' has no option 'initial_snapshots'" in capsys.readouterr().err
    assert main(["demo", "--venue-option", "okx-initial_snapshot"]) == 2
    assert "expected VENUE.NAME=VALUE" in capsys.readouterr().err


def test_snapshot_depth_defaults_to_the_venues_and_reaches_the_connectors() -> None:
    """Issue 13 section 2: depth by weight (binance spot 1000 levels) unless a stream configures it."""
    binance = {"venue": "binance", "symbols": ["BTCUSDT"], "tables": ["l2"]}
    (spec,) = build_plan(parse_config({"streams": [binance]}, environ={})).connectors
    assert spec.snapshot_depth is None
    (spec,) = build_plan(parse_config({"streams": [{**binance, "snapshot_depth": 5000}]}, environ={})).connectors
    assert spec.snapshot_depth == 5000
    assert "snapshot_depth" in error_of({**binance, "snapshot_depth": 0})
