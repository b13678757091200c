"""A stream started at run time is planned like a configured one (`actors.grow.plan_stream`, no Ray)."""

from __future__ import annotations

import pytest

from actors.grow import plan_stream
from jobs.demo import demo_capture
from xtrader.errors import ConfigError
from xtrader.plan import Endpoint

ENDPOINTS = {
    "deribit": Endpoint("ws://127.0.0.1:9001", "http://127.0.0.1:9001"),
    "okx": Endpoint("ws://127.0.0.1:9002", "http://127.0.0.1:9002"),
}


def test_a_new_venue_gets_its_connectors_placement_groups_book_and_arbiter() -> None:
    base = demo_capture("/tmp/unused", venues=("okx",))
    stream = {"name": "deribit", "venue": "deribit", "tables": ["l2", "trades"], "symbols": ["BTC-PERPETUAL"]}
    capture, plan = plan_stream(base, {**stream, "redundancy": 2}, ENDPOINTS)
    assert [s.id for s in capture.streams] == ["deribit"]
    assert [c.id for c in plan.connectors] == ["deribit/c0/r0", "deribit/c0/r1"]
    assert all(c.ws_base == "ws://127.0.0.1:9001" for c in plan.connectors)  # the simulator's deribit
    assert [g.id for g in plan.placement_groups] == ["deribit/c0"] and plan.placement_groups[0].cpus == 2.0
    assert [b.id for b in plan.books] == ["book/deribit"]
    assert [a.id for a in plan.arbiters] == ["deribit/arbiter"]
    assert [s.id for s in plan.sinks] == [s.id for s in plan_stream(base, stream, ENDPOINTS)[1].sinks]


def test_a_stream_the_configuration_would_refuse_is_refused() -> None:
    base = demo_capture("/tmp/unused", venues=("okx",))
    with pytest.raises(ConfigError):
        plan_stream(base, {"name": "deribit", "venue": "deribit", "symbols": ["BTC-PERPETUAL"]}, {})  # not served
    with pytest.raises(ValueError, match="redundancy"):
        plan_stream(base, {"venue": "okx", "symbols": ["BTC-USDT"], "redundancy": 99}, ENDPOINTS)
