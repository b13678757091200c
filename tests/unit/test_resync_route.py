"""Resync routing: a request goes to a connector that carries the symbol's book, the next one on each retry."""

from __future__ import annotations

from xtrader.resync_route import ResyncRouter

CARRIERS = {
    "okx/c0/r0": ["BTC-USDT"],
    "okx/c0/r1": ["BTC-USDT"],
    "okx/c1/r0": ["ETH-USDT"],
    "okx/c1/r1": ["ETH-USDT"],
    "okx-trades/c0/r0": [],
}


def test_a_request_under_the_arbiters_name_goes_to_a_carrier_and_retries_rotate() -> None:
    router = ResyncRouter(CARRIERS)
    routed = [router.route("ETH-USDT", "arbiter:okx") for _ in range(3)]
    assert routed == ["okx/c1/r0", "okx/c1/r1", "okx/c1/r0"]
    assert router.route("BTC-USDT", "arbiter:okx") == "okx/c0/r0"


def test_the_connector_that_delivered_the_book_is_asked_first() -> None:
    router = ResyncRouter(CARRIERS)
    assert router.route("ETH-USDT", "okx/c1/r1") == "okx/c1/r1"
    assert router.route("ETH-USDT", "okx/c1/r1") == "okx/c1/r0"


def test_a_valid_book_starts_its_next_request_from_the_first_candidate() -> None:
    router = ResyncRouter(CARRIERS)
    assert router.route("ETH-USDT", "arbiter:okx") == "okx/c1/r0"
    router.done("ETH-USDT")
    assert router.route("ETH-USDT", "arbiter:okx") == "okx/c1/r0"


def test_a_symbol_subscribed_at_run_time_is_asked_of_every_connector_in_turn_l2_carriers_first() -> None:
    router = ResyncRouter(CARRIERS)
    routed = [router.route("SOL-USDT", "arbiter:okx") for _ in range(5)]
    assert routed == ["okx/c0/r0", "okx/c0/r1", "okx/c1/r0", "okx/c1/r1", "okx-trades/c0/r0"]


def test_a_connector_that_delivers_a_book_itself_is_learnt_as_its_carrier() -> None:
    router = ResyncRouter({"binance/c0/r0": [], "binance/c1/r0": []})
    router.carry("binance/c1/r0", "BTCUSDT")
    router.carry("arbiter:binance", "BTCUSDT")  # not a connector: ignored
    assert router.candidates("BTCUSDT") == ["binance/c1/r0"]
    router.drop("binance/c1/r0", "BTCUSDT")
    assert router.candidates("BTCUSDT") == ["binance/c0/r0", "binance/c1/r0"]


def test_without_known_connectors_the_request_goes_back_where_the_data_came_from() -> None:
    router = ResyncRouter()
    assert router.route("P", "c0") == "c0"
    assert router.route("P", "c0") == "c0"


def test_carrying_counts_the_connections_of_a_symbol_through_every_change() -> None:
    router = ResyncRouter({"c0/r0": ["BTC"], "c0/r1": ["BTC"], "c1/r0": ["ETH"]})
    assert (router.carrying("BTC"), router.carrying("ETH"), router.carrying("SOL")) == (2, 1, 0)
    router.carry("c1/r0", "SOL")
    router.carry("c1/r0", "SOL")  # (again: no change)
    router.drop("c0/r1", "BTC")
    router.drop("c0/r1", "BTC")
    router.drop("nobody", "BTC")
    assert (router.carrying("BTC"), router.carrying("SOL")) == (1, 1)
    for symbol in ("BTC", "ETH", "SOL"):  # the count is what the carriers say
        assert router.carrying(symbol) == sum(symbol in s for s in router.carriers.values())
    router.set_carriers({"x": ["ETH"]})
    assert (router.carrying("BTC"), router.carrying("ETH")) == (0, 1)
