"""The shape of a bench report: entries, rates, latency figures, ratios, and its text form."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

ENTRIES = ("limit_recv", "limit_parse", "hot_path", "xtrader_e2e", "xtrader_e2e_fused", "cryptofeed")
#: name -> (numerator entry, denominator entry, figure compared)
RATIOS = {
    "hot_path/limit_parse": ("hot_path", "limit_parse", "msgs_per_cpu_s"),
    "xtrader_e2e/cryptofeed": ("xtrader_e2e", "cryptofeed", "msgs_per_cpu_s"),
    "xtrader_e2e_fused/cryptofeed": ("xtrader_e2e_fused", "cryptofeed", "msgs_per_cpu_s"),
    "xtrader_e2e/limit_recv": ("xtrader_e2e", "limit_recv", "msgs_per_cpu_s"),
}


def rates(messages: int, wall_s: float, cpu_s: float) -> dict[str, Any]:
    """messages, wall_s, cpu_s, msgs_per_s (wall) and msgs_per_cpu_s; a rate is None when its time is 0."""
    if messages < 0 or wall_s < 0 or cpu_s < 0:
        raise ValueError(f"negative figure: messages={messages} wall_s={wall_s} cpu_s={cpu_s}")
    return {
        "messages": messages,
        "wall_s": round(wall_s, 4),
        "cpu_s": round(cpu_s, 4),
        "msgs_per_s": round(messages / wall_s, 1) if wall_s > 0 else None,
        "msgs_per_cpu_s": round(messages / cpu_s, 1) if cpu_s > 0 else None,
    }


def percentiles_ms(seconds: Sequence[float]) -> dict[str, float | None]:
    """p50_ms, p99_ms, p999_ms of latencies in seconds (nearest rank); None when there are none."""
    if not seconds:
        return {"p50_ms": None, "p99_ms": None, "p999_ms": None}
    ordered = sorted(seconds)
    out: dict[str, float | None] = {}
    for name, q in (("p50_ms", 0.5), ("p99_ms", 0.99), ("p999_ms", 0.999)):
        rank = max(1, math.ceil(q * len(ordered)))
        out[name] = round(ordered[rank - 1] * 1000, 3)
    return out


def ratios(entries: Mapping[str, Mapping[str, Any] | None]) -> dict[str, float | None]:
    """The ratios of RATIOS; None when either entry is missing (skipped, failed) or has no figure."""
    out: dict[str, float | None] = {}
    for name, (top, bottom, figure) in RATIOS.items():
        a, b = entries.get(top), entries.get(bottom)
        x = a.get(figure) if a else None
        y = b.get(figure) if b else None
        out[name] = round(x / y, 3) if x is not None and y else None
    return out


def report(entries: Mapping[str, Mapping[str, Any] | None], machine: Mapping[str, Any]) -> dict[str, Any]:
    """The `--json` object: machine, every entry of ENTRIES (None: skipped), ratios."""
    unknown = set(entries) - set(ENTRIES)
    if unknown:
        raise ValueError(f"unknown entries: {sorted(unknown)}")
    full: dict[str, dict[str, Any] | None] = {}
    for name in ENTRIES:
        entry = entries.get(name)
        full[name] = None if entry is None else dict(entry)
    return {"machine": dict(machine), **full, "ratios": ratios(full)}


def text(result: Mapping[str, Any]) -> str:
    """A table for people: one line per entry, then the ratios."""
    lines = [
        "machine: " + ", ".join(f"{k} {v}" for k, v in result["machine"].items()),
        f"{'entry':17} {'messages':>9} {'msgs/s':>10} {'msgs/cpu-s':>11} {'p50 ms':>8} {'p99 ms':>8} {'p999 ms':>8}",
    ]

    def cell(value: Any, width: int, digits: int = 0) -> str:
        return f"{'-':>{width}}" if value is None else f"{value:>{width},.{digits}f}"

    for name in ENTRIES:
        entry = result.get(name)
        if entry is None:
            error = result.get("errors", {}).get(name)
            lines.append(f"{name:17} {'failed: ' + error if error else 'skipped'}")
            continue
        latency = entry.get("latency") or {}
        lines.append(
            f"{name:17} {entry['messages']:>9} {cell(entry['msgs_per_s'], 10)} "
            f"{cell(entry['msgs_per_cpu_s'], 11)} {cell(latency.get('p50_ms'), 8, 2)} "
            f"{cell(latency.get('p99_ms'), 8, 2)} {cell(latency.get('p999_ms'), 8, 2)}"
        )
    for name, value in result["ratios"].items():
        lines.append(f"{name}: {'-' if value is None else f'{value:.3f}'}")
    return "\n".join(lines)
