"""Run-time subscribe / unsubscribe requests are checked before anything changes (`xtrader.control_requests`)."""

from __future__ import annotations

import pytest

from xtrader.control_requests import Request, RequestError, check, venue_tables

LISTED = {"BTCUSDT", "ETHUSDT", "SOLUSDT"}


def test_a_good_request_is_normalised() -> None:
    request = check("subscribe", "binance", ["trades", "bbo", "trades"], [" SOLUSDT", "ETHUSDT"], instruments=LISTED)
    assert request == Request("subscribe", "binance", ("trades", "bbo"), ("SOLUSDT", "ETHUSDT"))
    # a single name is taken as a list of one
    assert check("subscribe", "okx", "l2", "BTC-USDT-SWAP").tables == ("l2",)


@pytest.mark.parametrize(
    ("venue", "tables", "symbols", "named"),
    [
        ("kraken", ["trades"], ["BTCUSDT"], ["unknown venue 'kraken'", "binance"]),
        ("binance", ["trades", "candles"], ["BTCUSDT"], ["binance has no table 'candles'", "trades, l2, bbo"]),
        ("binance", ["trades"], ["BTC USDT"], ["malformed symbol 'BTC USDT'"]),
        ("binance", ["trades"], ["-BTC"], ["malformed symbol '-BTC'"]),
        ("binance", ["trades"], ["DOGEUSDT"], ["binance does not list 'DOGEUSDT'"]),
        ("binance", [], ["BTCUSDT"], ["no tables given"]),
        ("binance", ["trades"], [], ["no symbols given"]),
        ("binance", ["trades"], [42], ["symbols: 42 is not a string"]),
        (None, ["trades"], ["BTCUSDT"], ["venue must be a string"]),
    ],
)
def test_a_bad_request_names_what_is_wrong(venue: object, tables: object, symbols: object, named: list[str]) -> None:
    with pytest.raises(RequestError) as error:
        check("subscribe", venue, tables, symbols, instruments=LISTED)
    message = str(error.value)
    assert message.startswith("subscribe rejected, nothing changed: ")
    for part in named:
        assert part in message, message


def test_every_problem_in_one_message() -> None:
    with pytest.raises(RequestError) as error:
        check("subscribe", "binance", ["candles"], ["BTC USDT", "DOGEUSDT", "ETHUSDT"], instruments=LISTED)
    message = str(error.value)
    assert "no table 'candles'" in message
    assert "malformed symbol 'BTC USDT'" in message
    assert "does not list 'DOGEUSDT'" in message and "ETHUSDT" not in message
    assert isinstance(error.value, ValueError)


def test_without_an_instrument_list_symbols_are_only_checked_for_form() -> None:
    assert check("subscribe", "binance", ["trades"], ["DOGEUSDT"], instruments=None).symbols == ("DOGEUSDT",)


def test_unsubscribe_names_what_is_not_subscribed() -> None:
    subscribed = {("trades", "BTCUSDT"), ("l2", "BTCUSDT")}
    assert check("unsubscribe", "binance", ["trades"], ["BTCUSDT"], subscribed=subscribed).symbols == ("BTCUSDT",)
    with pytest.raises(RequestError, match=r"not subscribed on binance: l2 ETHUSDT, bbo BTCUSDT, bbo ETHUSDT$"):
        check("unsubscribe", "binance", ["l2", "bbo"], ["BTCUSDT", "ETHUSDT"], subscribed=subscribed)


def test_venue_tables() -> None:
    assert venue_tables("okx") == ("trades", "l2", "bbo")  # the transport-only l2_wire is no table to capture
    with pytest.raises(KeyError, match="unknown venue"):
        venue_tables("nope")


def test_subscribe_names_what_is_already_subscribed() -> None:
    subscribed = {("trades", "BTCUSDT")}
    assert check("subscribe", "binance", ["l2"], ["BTCUSDT"], subscribed=subscribed).tables == ("l2",)
    with pytest.raises(RequestError, match=r"already subscribed on binance: trades BTCUSDT$"):
        check("subscribe", "binance", ["trades", "l2"], ["BTCUSDT"], subscribed=subscribed | {("l2", "ETHUSDT")})
