"""session: the sans-I/O connection state, driven by real venue frames and a fake monotonic clock."""

from __future__ import annotations

import orjson
import pytest

from xtrader.clock import Receipt
from xtrader.errors import ConfigError, SubscriptionError
from xtrader.session import Reconnect, Record, Refused, Send, Session
from xtrader.venues import Subscription, venue
from xtrader.venues.base import Control, Keepalive

S = 1_000_000_000
RECEIPT = Receipt(1_700_000_000_000_000_000, 0)


def controls(v, frame: bytes) -> list[Control]:
    return list(v.parse(frame, RECEIPT, v.columns()))


def sends(actions) -> list[bytes]:
    return [a.frame for a in actions if isinstance(a, Send)]


def kinds(actions) -> list[str]:
    return [a.kind for a in actions if isinstance(a, Record)]


def okx_session(*symbols: str, **kwargs) -> Session:
    v = venue("okx", ws_base="ws://127.0.0.1:1")
    subs = [Subscription("l2", s) for s in symbols] or [Subscription("l2", "BTC-USDT")]
    (connection,) = v.connections(subs)
    return Session(v, connection, **kwargs)


def binance_session() -> Session:
    v = venue("binance", ws_base="ws://127.0.0.1:1")
    (connection,) = v.connections([Subscription("trades", "BTCUSDT"), Subscription("l2", "BTCUSDT")])
    return Session(v, connection)


# -- opening and acknowledgements -----------------------------------------------------------


def test_a_url_subscribed_connection_sends_nothing_and_is_live_at_once():
    session = binance_session()
    assert session.open(0) == []
    assert session.acked == set(session.subscriptions)
    assert session.pending() == 0


def okx_ack(request_id: object, inst: str, channel: str = "books") -> bytes:
    return b'{"id":"%s","event":"subscribe","arg":{"channel":"%s","instId":"%s"},"connId":"a"}' % (
        str(request_id).encode(),
        channel.encode(),
        inst.encode(),
    )


def test_okx_subscribes_on_open_and_each_per_arg_ack_confirms_its_arg():
    session = okx_session("BTC-USDT", "ETH-USDT")
    (frame,) = sends(session.open(0))
    request = orjson.loads(frame)
    assert request["op"] == "subscribe" and len(request["args"]) == 2
    assert session.acked == set() and session.pending() == 1
    assert session.on_controls(controls(session.venue, okx_ack(request["id"], "BTC-USDT")), 1 * S) == []
    assert session.acked == {Subscription("l2", "BTC-USDT")} and session.pending() == 1
    actions = session.on_controls(controls(session.venue, okx_ack(request["id"], "ETH-USDT")), 1 * S)
    assert kinds(actions) == ["subscribe"]
    assert session.acked == set(session.subscriptions)
    assert session.pending() == 0
    # a repeated per-arg ack of the same request changes nothing
    assert session.on_controls(controls(session.venue, okx_ack(request["id"], "ETH-USDT")), 1 * S) == []


def test_a_refused_subscription_is_dropped_recorded_and_raised_as_subscription_error():
    session = okx_session("BTC-USDT")
    session.open(0)
    session.subscribe([Subscription("l2", "NOPE-USDT")], 1 * S)
    request_id = session._next_id - 1
    error = b'{"id":"%d","event":"error","code":"60018","msg":"doesn\'t exist","connId":"a"}' % request_id
    actions = session.on_controls(controls(session.venue, error), 2 * S)
    (refused,) = [a for a in actions if isinstance(a, Refused)]
    assert refused.subscriptions == (Subscription("l2", "NOPE-USDT"),)
    assert isinstance(refused.error, SubscriptionError) and refused.error.terminal
    assert [(a.kind, a.symbol) for a in actions if isinstance(a, Record)] == [("error", "NOPE-USDT")]
    assert session.subscriptions == (Subscription("l2", "BTC-USDT"),)
    assert Subscription("l2", "NOPE-USDT") in session.refused
    assert session.failed is None
    # not resubscribed on the next open
    (frame,) = sends(session.open(3 * S))
    assert b"NOPE" not in frame


def test_when_every_subscription_is_refused_the_session_has_failed():
    session = okx_session("BTC-USDT")
    session.open(0)
    error = b'{"id":"1","event":"error","code":"60012","msg":"Invalid request","connId":"a"}'
    session.on_controls(controls(session.venue, error), 1 * S)
    assert isinstance(session.failed, SubscriptionError)
    assert session.subscriptions == ()


def test_an_error_for_no_request_of_ours_is_only_recorded():
    session = binance_session()
    session.open(0)
    error = b'{"error":{"code":3,"msg":"Invalid JSON"},"id":null}'
    actions = session.on_controls(controls(session.venue, error), 1 * S)
    assert kinds(actions) == ["error"]
    assert session.acked == set(session.subscriptions)


def test_an_unanswered_request_is_reported_once():
    session = okx_session(ack_timeout_s=5.0)
    session.open(0)
    assert session.next_deadline_ns() == 5 * S
    assert kinds(session.poll(4 * S)) == []
    assert kinds(session.poll(5 * S)) == ["error"]
    assert kinds(session.poll(6 * S)) == []
    assert session.stats.unanswered == 1


# -- keepalive ---------------------------------------------------------------------------------


def test_okx_pings_after_idle_and_reconnects_when_still_silent():
    session = okx_session()
    session.open(0)
    session.on_frame(1 * S)
    assert sends(session.poll(20 * S)) == []
    assert sends(session.poll(21 * S)) == [b"ping"]
    assert sends(session.poll(25 * S)) == []  # one ping outstanding at a time
    (reconnect,) = session.poll(31 * S)
    assert isinstance(reconnect, Reconnect) and not reconnect.graceful
    assert "stale" in reconnect.reason
    assert session.poll(40 * S) == []  # reported once


def test_a_pong_keeps_the_okx_link_alive():
    session = okx_session()
    session.open(0)
    assert sends(session.poll(20 * S)) == [b"ping"]
    session.on_frame(20 * S + 1000)
    assert session.on_controls(controls(session.venue, b"pong"), 20 * S + 1000) == []
    assert session.poll(35 * S) == []
    assert sends(session.poll(41 * S)) == [b"ping"]
    assert session.stats.pongs == 1 and session.stats.pings_sent == 2


def test_server_pings_count_as_life_where_the_server_pings():
    session = Session(
        venue("binance", ws_base="ws://x"),
        venue("binance", ws_base="ws://x").connections([Subscription("trades", "BTCUSDT")])[0],
        keepalive=Keepalive(None, 1.0, 3.0),
    )
    session.open(0)
    for t in range(1, 10):
        session.on_server_ping(t * S)
        assert session.poll(t * S) == []  # never a client ping
    assert isinstance(session.poll(12 * S)[0], Reconnect)


def test_next_deadline_is_the_earliest_of_ping_and_stale():
    session = okx_session()
    session.open(0)
    session.on_controls(controls(session.venue, okx_ack(1, "BTC-USDT")), 0)
    session.on_frame(2 * S)
    assert session.next_deadline_ns() == 22 * S
    session.poll(22 * S)
    assert session.next_deadline_ns() == 32 * S


def test_a_closed_session_polls_nothing():
    session = okx_session()
    session.open(0)
    session.closed()
    assert session.poll(100 * S) == [] and session.next_deadline_ns() is None


# -- venue control events ------------------------------------------------------------------


def deribit_session() -> Session:
    v = venue("deribit", ws_base="ws://127.0.0.1:1")
    (connection,) = v.connections([Subscription("l2", "BTC-PERPETUAL"), Subscription("trades", "BTC-PERPETUAL")])
    return Session(v, connection)


def test_deribit_opens_with_heartbeat_then_subscribe_each_with_its_own_id():
    session = deribit_session()
    frames = [orjson.loads(f) for f in sends(session.open(0))]
    assert [f["method"] for f in frames] == ["public/set_heartbeat", "public/subscribe", "public/subscribe"]
    assert frames[1]["params"]["channels"] == ["platform_state", "platform_state.public_methods_state"]
    subscribe_id = frames[2]["id"]
    ack = b'{"jsonrpc":"2.0","id":%d,"result":["book.BTC-PERPETUAL.100ms","trades.BTC-PERPETUAL.100ms"]}' % (
        subscribe_id
    )
    session.on_controls(controls(session.venue, ack), 1 * S)
    assert session.acked == set(session.subscriptions)


def test_deribit_test_request_is_answered_with_public_test():
    session = deribit_session()
    session.open(0)
    assert session.pending() == 2  # set_heartbeat and subscribe
    request = b'{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}'
    (frame,) = sends(session.on_controls(controls(session.venue, request), 1 * S))
    answer = orjson.loads(frame)
    assert answer["method"] == "public/test"
    assert session.stats.test_requests == 1
    assert session.pending() == 3
    # its reply confirms it
    reply = b'{"jsonrpc":"2.0","id":%d,"result":{"version":"1.2.26"}}' % answer["id"]
    session.on_controls(controls(session.venue, reply), 2 * S)
    assert session.pending() == 2


def test_a_shutdown_notice_asks_for_a_graceful_reconnect_now():
    session = binance_session()
    session.open(0)
    (action,) = session.on_controls([Control("shutdown", "serverShutdown")], 1 * S)
    assert action == Reconnect("venue shutdown notice: serverShutdown", graceful=True)


def test_notices_are_recorded_and_unknown_messages_only_counted():
    session = binance_session()
    session.open(0)
    assert kinds(session.on_controls([Control("notice", "64008 upgrade")], 0)) == ["unknown"]
    assert session.on_controls([Control("unknown", "kline")], 0) == []
    assert session.stats.unknown == 1 and session.stats.notices == 1


# -- runtime changes --------------------------------------------------------------------------


def test_runtime_subscribe_on_binance_sends_subscribe_and_replans_the_url():
    session = binance_session()
    session.open(0)
    (frame,) = sends(session.subscribe([Subscription("bbo", "ETHUSDT")], 1 * S))
    request = orjson.loads(frame)
    assert request["method"] == "SUBSCRIBE" and request["params"] == ["ethusdt@bookTicker"]
    assert "ethusdt@bookTicker" in session.connection.url
    session.on_controls(controls(session.venue, b'{"result":null,"id":%d}' % request["id"]), 1 * S)
    assert Subscription("bbo", "ETHUSDT") in session.acked
    # after a reconnect the URL carries it: nothing to send, live at once
    session.closed()
    assert session.open(2 * S) == []
    assert Subscription("bbo", "ETHUSDT") in session.acked


def test_runtime_unsubscribe_sends_unsubscribe_and_forgets_it():
    session = okx_session("BTC-USDT", "ETH-USDT")
    session.open(0)
    (frame,) = sends(session.unsubscribe([Subscription("l2", "ETH-USDT")], 1 * S))
    assert orjson.loads(frame)["op"] == "unsubscribe"
    assert session.subscriptions == (Subscription("l2", "BTC-USDT"),)
    (reopen,) = sends(session.open(2 * S))
    assert b"ETH-USDT" not in reopen


def test_subscribing_while_closed_only_changes_the_next_open():
    session = okx_session("BTC-USDT")
    assert session.subscribe([Subscription("trades", "BTC-USDT")], 0) == []
    (frame,) = sends(session.open(1 * S))
    assert len(orjson.loads(frame)["args"]) == 2


def test_a_subscription_that_needs_another_connection_is_a_config_error():
    v = venue("binance_futures", ws_base="ws://x")
    (connection,) = v.connections([Subscription("l2", "BTCUSDT")])
    session = Session(v, connection)
    with pytest.raises(ConfigError, match="another connection"):
        session.subscribe([Subscription("trades", "BTCUSDT")], 0)  # /market, not /public


def test_resubscribe_unsubscribes_and_subscribes_the_book_again():
    session = okx_session("BTC-USDT", "ETH-USDT")
    session.open(0)
    actions = session.resubscribe("ETH-USDT", 1 * S)
    assert [(a.kind, a.symbol) for a in actions if isinstance(a, Record)] == [("resync", "ETH-USDT")]
    ops = [orjson.loads(f) for f in sends(actions)]
    assert [o["op"] for o in ops] == ["unsubscribe", "subscribe"]
    assert all(o["args"] == [{"channel": "books", "instId": "ETH-USDT"}] for o in ops)
    assert ops[0]["id"] != ops[1]["id"]
    assert session.resubscribe("XRP-USDT", 1 * S) == []


# -- issue 12, items 2 and 3: refuse only what was not acknowledged ------------------------------


def refused_of(actions) -> set[Subscription]:
    return {s for a in actions if isinstance(a, Refused) for s in a.subscriptions}


def test_okx_an_error_naming_one_arg_refuses_only_that_arg():
    session = okx_session("BTC-USDT", "ETH-USDT", "NOPE-USDT")
    request = orjson.loads(sends(session.open(0))[0])
    error = (
        b'{"id":"%s","event":"error","code":"60018","msg":"Wrong URL or channel:books,instId:NOPE-USDT '
        b"doesn't exist. Please use the correct URL, channel and parameters referring to API document.\","
        b'"connId":"a"}'
    ) % request["id"].encode()
    error = error.replace(b'document.\\",', b'document.",')
    actions = []
    for frame in (okx_ack(request["id"], "BTC-USDT"), error, okx_ack(request["id"], "ETH-USDT")):
        actions += session.on_controls(controls(session.venue, frame), 1 * S)
    assert refused_of(actions) == {Subscription("l2", "NOPE-USDT")}
    assert session.acked == {Subscription("l2", "BTC-USDT"), Subscription("l2", "ETH-USDT")}
    assert session.subscriptions == (Subscription("l2", "BTC-USDT"), Subscription("l2", "ETH-USDT"))
    assert session.failed is None and session.stats.refused == 1 and session.pending() == 0
    assert [(a.kind, a.symbol) for a in actions if isinstance(a, Record) and a.kind == "error"] == [
        ("error", "NOPE-USDT")
    ]


def test_okx_an_unnamed_error_before_the_other_acks_refuses_only_the_unacknowledged_arg():
    session = okx_session("BTC-USDT", "ETH-USDT", "NOPE-USDT")
    request = orjson.loads(sends(session.open(0))[0])
    error = b'{"id":"%s","event":"error","code":"64003","msg":"fee tier","connId":"a"}' % request["id"].encode()
    actions = session.on_controls(controls(session.venue, error), 1 * S)
    assert refused_of(actions) == set()  # which arg? wait for the other replies
    actions += session.on_controls(controls(session.venue, okx_ack(request["id"], "BTC-USDT")), 1 * S)
    actions += session.on_controls(controls(session.venue, okx_ack(request["id"], "ETH-USDT")), 1 * S)
    assert refused_of(actions) == {Subscription("l2", "NOPE-USDT")}
    assert session.refused[Subscription("l2", "NOPE-USDT")] == "code 64003: fee tier"


def test_okx_an_unnamed_error_refuses_the_unacknowledged_args_at_the_ack_timeout():
    session = okx_session("BTC-USDT", "ETH-USDT", "NOPE-USDT", ack_timeout_s=5.0)
    request = orjson.loads(sends(session.open(0))[0])
    error = b'{"id":"%s","event":"error","code":"64003","msg":"fee tier","connId":"a"}' % request["id"].encode()
    session.on_controls(controls(session.venue, okx_ack(request["id"], "BTC-USDT")), 1 * S)
    session.on_controls(controls(session.venue, error), 1 * S)
    assert session.pending() == 1 and session.next_deadline_ns() == 5 * S  # one reply is still missing
    assert refused_of(session.poll(5 * S)) == {Subscription("l2", "ETH-USDT"), Subscription("l2", "NOPE-USDT")}
    assert session.acked == {Subscription("l2", "BTC-USDT")} and session.pending() == 0


def deribit_two_requests_session() -> Session:
    v = venue("deribit", ws_base="ws://127.0.0.1:1")
    subs = [Subscription("l2", "BTC-PERPETUAL"), Subscription("trades", "BTC-PERPETUAL", "raw")]
    (connection,) = v.connections(subs)
    return Session(v, connection)


def test_deribit_a_refused_raw_request_refuses_only_its_own_channels():
    session = deribit_two_requests_session()
    frames = [orjson.loads(f) for f in sends(session.open(0))]
    assert [(f["method"], f["params"].get("channels")) for f in frames] == [
        ("public/set_heartbeat", None),
        ("public/subscribe", ["platform_state", "platform_state.public_methods_state"]),
        ("public/subscribe", ["book.BTC-PERPETUAL.100ms"]),
        ("public/subscribe", ["trades.BTC-PERPETUAL.raw"]),
    ]
    heartbeat, platform, book, raw = (f["id"] for f in frames)
    assert len({heartbeat, platform, book, raw}) == 4
    ack = b'{"jsonrpc":"2.0","id":%d,"result":["book.BTC-PERPETUAL.100ms"]}' % book
    error = (
        b'{"jsonrpc":"2.0","id":%d,"error":{"message":"raw_subscriptions_not_available_for_unauthorized",'
        b'"code":13778}}' % raw
    )
    actions = session.on_controls(controls(session.venue, ack), 1 * S)
    actions += session.on_controls(controls(session.venue, error), 1 * S)
    assert refused_of(actions) == {Subscription("trades", "BTC-PERPETUAL", "raw")}
    assert session.acked == {Subscription("l2", "BTC-PERPETUAL")}
    assert session.subscriptions == (Subscription("l2", "BTC-PERPETUAL"),) and session.failed is None


def test_deribit_the_heartbeat_ok_confirms_no_subscription_and_a_channel_left_out_is_refused():
    v = venue("deribit", ws_base="ws://127.0.0.1:1")
    (connection,) = v.connections([Subscription("l2", "BTC-PERPETUAL"), Subscription("l2", "NOPE-PERPETUAL")])
    session = Session(v, connection)
    heartbeat, _platform, subscribe = (orjson.loads(f)["id"] for f in sends(session.open(0)))
    ok = b'{"jsonrpc":"2.0","id":%d,"result":"ok"}' % heartbeat
    assert refused_of(session.on_controls(controls(v, ok), 1 * S)) == set()
    assert session.acked == set() and session.pending() == 1  # the subscribe request is still unanswered
    result = b'{"jsonrpc":"2.0","id":%d,"result":["book.BTC-PERPETUAL.100ms"]}' % subscribe
    actions = session.on_controls(controls(v, result), 2 * S)
    assert refused_of(actions) == {Subscription("l2", "NOPE-PERPETUAL")}
    assert ("error", "NOPE-PERPETUAL") in [(a.kind, a.symbol) for a in actions if isinstance(a, Record)]
    assert session.acked == {Subscription("l2", "BTC-PERPETUAL")}
