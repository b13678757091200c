"""`--chaos SPEC`: parsing (a bad spec is a clear error) and the schedule of faults."""

from __future__ import annotations

import pytest

from xtrader.chaos import FAULT_KINDS, Chaos, counted, parse_chaos
from xtrader.errors import ConfigError


def test_a_spec_parses_into_its_switches() -> None:
    chaos = parse_chaos("kill_connector_every_s=7, kill_sink_every_s=11,sigterm_at_s=25")
    assert chaos == Chaos(kill_connector_every_s=7, kill_sink_every_s=11, sigterm_at_s=25)
    assert chaos
    assert not parse_chaos("") and not parse_chaos(None)
    paced = parse_chaos("kill_connector_every_s=7,one_at_a_time=1")
    assert paced.one_at_a_time and paced == Chaos(kill_connector_every_s=7, one_at_a_time=True)
    assert not parse_chaos("one_at_a_time=1")  # a way to pace faults, not a fault


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("kill_everything_every_s=3", "unknown fault 'kill_everything_every_s'"),
        ("kill_sink_every_s", "is not name=value"),
        ("kill_sink_every_s=soon", "is not a number"),
        ("kill_sink_every_s=-1", "must be a finite number"),
        ("kill_sink_every_s=inf", "must be a finite number"),
        ("kill_sink_every_s=nan", "must be a finite number"),
        ("questdb_down_s=5", "is not D@T"),
        ("parquet_unwritable_s=5@1@2", "is not D@T"),
        ("parquet_unwritable_s=5@soon", "is not a number"),
        ("questdb_down_s=-5@1", "must be a finite number"),
        ("one_at_a_time=2", "must be 0 or 1"),
        ("one_at_a_time=yes", "must be 0 or 1"),
    ],
)
def test_a_bad_spec_is_a_clear_error(spec: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        parse_chaos(spec)


def test_faults_fall_due_once_each_in_time_order() -> None:
    chaos = Chaos(kill_connector_every_s=7, kill_book_every_s=13, sigterm_at_s=25)
    seen: list[tuple[float, str]] = []
    previous = 0.0
    for step in range(1, 301):  # 30 s in 0.1 s ticks, as the driver's thread checks it
        now = step / 10
        seen.extend((now, kind) for kind in chaos.due(previous, now))
        previous = now
    assert [(round(t, 1), k) for t, k in seen] == [
        (7.0, "connector"),
        (13.0, "book"),
        (14.0, "connector"),
        (21.0, "connector"),
        (25.0, "sigterm"),
        (26.0, "book"),
        (28.0, "connector"),
    ]


def test_a_late_tick_still_injects_every_fault_it_skipped() -> None:
    assert Chaos(kill_sink_every_s=2).due(0.0, 7.0) == ["sink", "sink", "sink"]


def test_the_summary_counts_every_kind() -> None:
    assert counted({"sink": 2}) == {kind: 2 if kind == "sink" else 0 for kind in FAULT_KINDS}


def test_storage_outages_parse_as_duration_at_time_and_fall_due_once() -> None:
    chaos = parse_chaos("questdb_down_s=5@10,parquet_unwritable_s=4@15,kill_sink_every_s=11")
    assert chaos.questdb_down_s == (5.0, 10.0) and chaos.parquet_unwritable_s == (4.0, 15.0)
    assert chaos.duration_s("questdb_down") == 5.0 and chaos.duration_s("parquet_unwritable") == 4.0
    assert chaos.due(0.0, 20.0) == ["questdb_down", "sink", "parquet_unwritable"]
    assert chaos.due(11.0, 14.9) == [] and chaos.due(14.9, 15.0) == ["parquet_unwritable"]
    assert {"questdb_down", "parquet_unwritable"} <= set(FAULT_KINDS)
