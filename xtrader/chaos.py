"""Process faults injected into a running capture (`xtrader demo --chaos SPEC`): what and when.

SPEC: comma-separated `name=value`, e.g. `kill_connector_every_s=7,kill_sink_every_s=11,sigterm_at_s=25`:

- `kill_connector_every_s`, `kill_sink_every_s`, `kill_book_every_s`, `kill_arbiter_every_s`: every that many
  seconds, kill one actor of that kind (in turn) with `ray.kill(actor, no_restart=False)`: Ray restarts it.
- `sigterm_at_s`: send SIGTERM to the driver at that second (the capture stops cleanly: drain, flush, close).

This module only parses and schedules (no Ray): `jobs/chaos.py` carries the faults out.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from xtrader.errors import ConfigError

#: the kind of actor each kill switch targets
KILLS = {
    "kill_connector_every_s": "connector",
    "kill_sink_every_s": "sink",
    "kill_book_every_s": "book",
    "kill_arbiter_every_s": "arbiter",
}

#: what the summary's `chaos` counts: kills per actor kind, and SIGTERMs
FAULT_KINDS = ("connector", "sink", "book", "arbiter", "sigterm")


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

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))

    def due(self, previous_s: float, now_s: float) -> list[str]:
        """The faults due in (previous_s, now_s], seconds since the capture started, in schedule order:
        each kill as its actor kind, `sigterm`."""
        out: list[tuple[float, str]] = []
        for name, kind in KILLS.items():
            every = getattr(self, name)
            if every > 0:
                first = int(previous_s // every) + 1
                out.extend((k * every, kind) for k in range(first, int(now_s // every) + 1))
        if self.sigterm_at_s and previous_s < self.sigterm_at_s <= now_s:
            out.append((self.sigterm_at_s, "sigterm"))
        return [kind for _, kind in sorted(out)]


NO_CHAOS = Chaos()


def parse_chaos(spec: str | None) -> Chaos:
    """A `Chaos` from SPEC; ConfigError naming the bad part (unknown name, not a number, negative)."""
    if not spec:
        return NO_CHAOS
    known = {f.name for f in fields(Chaos)}
    values: dict[str, float] = {}
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
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"--chaos: {name}={raw!r} is not a number of seconds") from None
        if not value >= 0 or value == float("inf"):
            raise ConfigError(f"--chaos: {name} must be a finite number of seconds >= 0, got {raw!r}")
        values[name] = value
    return Chaos(**values)
