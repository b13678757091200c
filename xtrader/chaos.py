"""Process faults injected into a running capture (`xtrader demo --chaos SPEC`): what and when.

SPEC: comma-separated `name=value`, e.g. `kill_connector_every_s=7,kill_sink_every_s=11,sigterm_at_s=25`:

- `kill_connector_every_s`, `kill_sink_every_s`, `kill_book_every_s`, `kill_arbiter_every_s`: every that many
  seconds, kill one actor of that kind (in turn) with `ray.kill(actor, no_restart=False)`: Ray restarts it.
- `sigterm_at_s`: send SIGTERM to the driver at that second (the capture stops cleanly: drain, flush, close).
- `one_at_a_time=1`: a fault that falls due before the capture recovered from the previous one waits until it
  has (every actor answers, the one killed is a new process, every connector is connected and reading, every
  book is valid), then goes. Faults then never overlap however slow the machine is: the capture is tested
  against single faults, which `--redundancy 2` covers. On a clock alone, a connector killed while its stream's
  other connection is still restarting loses what only it held (docs/guide.md, "What redundancy covers").
- `questdb_down_s=D@T`, `parquet_unwritable_s=D@T`: T s after the start, for D s, every QuestDB sink cannot
  reach QuestDB / every Parquet sink cannot write under its root (`SinkActor.outage`: the sink's storage
  calls fail as they would, so it keeps the data in its spill / write-ahead log and writes it once the
  outage is over; the other sink is not touched).

This module only parses and schedules (no Ray): `jobs/chaos.py` carries the faults out.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from xtrader.errors import ConfigError

#: the kind of actor each kill switch targets
KILLS = {
    "kill_connector_every_s": "connector",
    "kill_sink_every_s": "sink",
    "kill_book_every_s": "book",
    "kill_arbiter_every_s": "arbiter",
}

#: the storage outage each `D@T` switch injects (`SinkActor.outage(kind, D)`)
OUTAGES = {"questdb_down_s": "questdb_down", "parquet_unwritable_s": "parquet_unwritable"}
#: the kind of sink each outage hits
OUTAGE_SINKS = {"questdb_down": "questdb", "parquet_unwritable": "parquet"}

#: what the summary's `chaos` counts: kills per actor kind, SIGTERMs, storage outages
FAULT_KINDS = ("connector", "sink", "book", "arbiter", "sigterm", *OUTAGES.values())


def counted(counts: dict[str, int] | None) -> dict[str, int]:
    """Every fault kind, 0 when none was injected (the summary's shape does not depend on the spec)."""
    return {kind: (counts or {}).get(kind, 0) for kind in FAULT_KINDS}


@dataclass(frozen=True)
class Chaos:
    """Fault switches; 0 means off."""

    kill_connector_every_s: float = 0.0
    kill_sink_every_s: float = 0.0
    kill_book_every_s: float = 0.0
    kill_arbiter_every_s: float = 0.0
    sigterm_at_s: float = 0.0
    #: (duration D, at T) seconds, or None (off)
    questdb_down_s: tuple[float, float] | None = None
    parquet_unwritable_s: tuple[float, float] | None = None
    #: each fault waits until the capture recovered from the previous one (a pace, not a fault itself)
    one_at_a_time: bool = False

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self) if f.name != "one_at_a_time")

    def duration_s(self, kind: str) -> float:
        """How long the outage `kind` (a value of OUTAGES) lasts."""
        name = next(n for n, k in OUTAGES.items() if k == kind)
        window: tuple[float, float] = getattr(self, name)
        return window[0]

    def due(self, previous_s: float, now_s: float) -> list[str]:
        """The faults due in (previous_s, now_s], seconds since the capture started, in schedule order:
        each kill as its actor kind, `sigterm`, each outage as its kind (`questdb_down`...)."""
        out: list[tuple[float, str]] = []
        for name, kind in KILLS.items():
            every = getattr(self, name)
            if every > 0:
                first = int(previous_s // every) + 1
                out.extend((k * every, kind) for k in range(first, int(now_s // every) + 1))
        for name, kind in OUTAGES.items():
            window = getattr(self, name)
            if window is not None and previous_s < window[1] <= now_s:
                out.append((window[1], kind))
        if self.sigterm_at_s and previous_s < self.sigterm_at_s <= now_s:
            out.append((self.sigterm_at_s, "sigterm"))
        return [kind for _, kind in sorted(out)]


NO_CHAOS = Chaos()


def parse_chaos(spec: str | None) -> Chaos:
    """A `Chaos` from SPEC; ConfigError naming the bad part (unknown name, not a number, negative)."""
    if not spec:
        return NO_CHAOS
    known = {f.name for f in fields(Chaos)}
    values: dict[str, Any] = {}
    for raw_part in spec.split(","):
        part = raw_part.strip()
        if not part:
            continue
        name, sep, raw = part.partition("=")
        name = name.strip()
        if not sep:
            raise ConfigError(f"--chaos: {part!r} is not name=value")
        if name not in known:
            raise ConfigError(f"--chaos: unknown fault {name!r}; known: {', '.join(sorted(known))}")
        if name in OUTAGES:
            duration, sep, at = raw.partition("@")
            if not sep or "@" in at:
                raise ConfigError(f"--chaos: {name}={raw!r} is not D@T (for D seconds, T seconds after the start)")
            values[name] = (_seconds(name, duration), _seconds(name, at))
        elif name == "one_at_a_time":
            if raw.strip() not in ("0", "1"):
                raise ConfigError(f"--chaos: one_at_a_time must be 0 or 1, got {raw!r}")
            values[name] = raw.strip() == "1"
        else:
            values[name] = _seconds(name, raw)
    return Chaos(**values)


def _seconds(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"--chaos: {name}={raw!r} is not a number of seconds") from None
    if not value >= 0 or value == float("inf"):
        raise ConfigError(f"--chaos: {name} must be a finite number of seconds >= 0, got {raw!r}")
    return value
