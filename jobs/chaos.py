"""Carry out `--chaos` (xtrader/chaos.py) on a running capture: kill actors (Ray restarts them), SIGTERM,
storage outages (`SinkActor.outage`: QuestDB unreachable, the Parquet tree unwritable, for D seconds).

Every fault injected is an `events` row (kind `chaos`, written to every sink like any other event) and is
counted (`ChaosThread.counts`, the summary's `chaos`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
import uuid
from typing import Any

import pyarrow as pa

from jobs.fleet import Running
from xtrader.chaos import OUTAGE_SINKS, OUTAGES, Chaos
from xtrader.schema import EVENTS

log = logging.getLogger("xtrader.chaos")

#: how often the schedule is checked (s)
TICK_S = 0.1
#: `one_at_a_time`: a connector counts as reading again once its last message is at most this old (s)
FRESH_S = 2.0


class ChaosThread:
    """Injects `chaos` into `running`, counting seconds from `started` (monotonic), until `stop()`."""

    def __init__(self, chaos: Chaos, running: Running, started: float) -> None:
        self.chaos = chaos
        self.running = running
        self.started = started
        self.counts: dict[str, int] = {}
        self._turn: dict[str, int] = {}
        self._stop = threading.Event()
        self._source = f"chaos#{uuid.uuid4().hex[:12]}"
        self._seq: dict[str, int] = {}
        self._stats: dict[str, Any] = {}  # `one_at_a_time`: the actors' stats at the last recovery check
        self._victim: tuple[str, Any] | None = None  # (name, pid) of the last actor killed
        self._thread = threading.Thread(target=self._run, name="xtrader-chaos", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> dict[str, int]:
        """Stop injecting; the faults injected, per kind."""
        self._stop.set()
        self._thread.join(30)
        return dict(self.counts)

    def _run(self) -> None:
        previous = 0.0
        due: list[str] = []
        one_at_a_time = self.chaos.one_at_a_time
        while not self._stop.wait(TICK_S):
            now = time.monotonic() - self.started
            due.extend(self.chaos.due(previous, now))
            previous = now
            while due and not (one_at_a_time and not self._recovered()):
                kind = due.pop(0)
                try:
                    self._inject(kind)
                except Exception as exc:  # a fault that could not be injected is reported, never fatal
                    log.warning("chaos: %s: %r", kind, exc)
                if one_at_a_time:
                    break  # the next one waits until the capture recovered from this one

    def _recovered(self) -> bool:
        """`one_at_a_time`: every actor answers, the last one killed is a new process, every connector is
        connected and reading, every book is valid."""
        import ray

        from xtrader.driver.until import StopWhen

        try:
            stats = ray.get(self.running.controller.stats.remote(), timeout=10)
        except Exception:
            return False
        self._stats = stats
        if any(not isinstance(s, dict) or s.get("error") for s in stats.values()):
            return False
        if self._victim is not None and stats.get(self._victim[0], {}).get("pid") in (None, self._victim[1]):
            return False
        for name in self.running.connectors:
            s = stats.get(name, {})
            age = s.get("last_message_age_s")
            if not (s.get("started") and s.get("connected")) or age is None or age > FRESH_S:
                return False
        return not StopWhen(books_valid=True).missing(self.running.plan, stats, {})

    def _inject(self, kind: str) -> None:
        if kind == "sigterm":
            self._record(kind, "SIGTERM to the driver", self._venues())
            os.kill(os.getpid(), signal.SIGTERM)
            return
        import ray

        if kind in OUTAGES.values():
            self._outage(kind)
            return
        group = {
            "connector": self.running.connectors,
            "sink": self.running.sinks,
            "book": self.running.books,
            "arbiter": self.running.arbiters,
        }[kind]
        if not group:
            return
        names = sorted(group)
        name = names[self._turn.get(kind, 0) % len(names)]
        self._turn[kind] = self._turn.get(kind, 0) + 1
        self._victim = (name, self._stats.get(name, {}).get("pid"))
        host = self.running.host  # `pipeline.fused`: the stage's process is every stage's
        if host is None:
            ray.kill(group[name], no_restart=False)
            log.warning("chaos: killed %s (Ray restarts it)", name)
            self._record(kind, f"killed {name} (ray.kill, restarted by Ray)", self._venues(name))
            return
        # the sinks die too: the fault's row is stored (in their write-ahead log) before the kill
        what = f"{name} and every other stage (pipeline.fused: one process)"
        refs = self._record(kind, f"killed {what} (ray.kill, restarted by Ray)", self._venues(name))
        with contextlib.suppress(Exception):
            ray.get(refs, timeout=30)
        ray.kill(host, no_restart=False)
        log.warning("chaos: killed %s (Ray restarts it)", what)

    def _outage(self, kind: str) -> None:
        """Start outage `kind` in every sink it hits; counted and recorded once if any sink took it."""
        import ray

        duration = self.chaos.duration_s(kind)
        names = sorted(self.running.sinks)
        took = ray.get([self.running.sinks[n].outage.remote(kind, duration) for n in names], timeout=60)
        hit = [name for name, ok in zip(names, took, strict=True) if ok]
        if not hit:  # e.g. questdb_down_s without a QuestDB sink (`xtrader demo` without --questdb)
            log.warning("chaos: %s: no %s sink in this capture, nothing injected", kind, OUTAGE_SINKS[kind])
            return
        log.warning("chaos: %s for %g s in %s", kind, duration, ", ".join(hit))
        self._record(kind, f"{kind} for {duration:g} s ({', '.join(hit)})", self._venues())

    def _venues(self, actor: str | None = None) -> list[str]:
        """The venues whose data passes through `actor` (every venue for a sink or the driver)."""
        plan = self.running.plan
        specs: list[Any] = [*plan.connectors, *plan.books, *plan.arbiters]
        venues = sorted({s.venue for s in specs if actor is None or s.id == actor})
        return venues or sorted({s.venue for s in specs})

    def _record(self, kind: str, detail: str, venues: list[str]) -> list[Any]:
        """Count the fault and write its `events` rows (kind `chaos`) to every sink; the writes' refs."""
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if not venues:
            return []
        now_ns = time.time_ns()
        batch = pa.RecordBatch.from_pydict(
            {
                "exchange": venues,
                "symbol": [None] * len(venues),
                "ts": [now_ns] * len(venues),
                "kind": ["chaos"] * len(venues),
                "detail": [f"chaos: {detail}"] * len(venues),
            },
            schema=EVENTS,
        )
        refs = []
        for name, sink in self.running.sinks.items():
            seq = self._seq.get(name, 0)
            self._seq[name] = seq + 1
            # retried by Ray if it restarts
            refs.append(sink.write.remote(self._source, seq, {"events": batch}, "chaos"))
        return refs


__all__ = ["ChaosThread"]
