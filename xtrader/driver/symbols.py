"""Requested symbols checked against each venue's instrument list."""

from __future__ import annotations

import logging
import sys

from xtrader.config import Capture
from xtrader.errors import ConfigError
from xtrader.plan import Plan

log = logging.getLogger("xtrader.capture")


def validate_symbols(capture: Capture, plan: Plan) -> list[str]:
    """Requested symbols the venue's instrument list does not know (`venue:symbol`); [] when it cannot be read."""
    import httpx

    from xtrader.venues import venue as make_venue

    unknown: list[str] = []
    bases = {c.stream: (c.venue, c.ws_base, c.rest_base) for c in plan.connectors}
    for stream in capture.streams:
        name, ws_base, rest_base = bases[stream.id]
        v = make_venue(name, ws_base, rest_base)
        urls = v.instruments_request()
        if not urls:
            continue
        known: set[str] = set()
        try:
            for url in urls:
                response = httpx.get(url, timeout=10.0)
                response.raise_for_status()
                known |= v.parse_instruments(response.content)
        except Exception as exc:
            log.warning("%s: instrument list unavailable (%r); symbols not checked", stream.id, exc)
            continue
        unknown.extend(f"{name}:{s}" for s in stream.symbols if s not in known)
    if unknown:
        print(f"xtrader: unknown symbols, not subscribed: {', '.join(unknown)}", file=sys.stderr)
    return unknown


def without_symbols(capture: Capture, unknown: list[str]) -> Capture:
    """The capture minus `venue:symbol` entries; ConfigError when a stream is left with none."""
    data = capture.model_dump()
    for index, stream in enumerate(data["streams"]):
        kept = [s for s in stream["symbols"] if f"{stream['venue']}:{s}" not in unknown]
        if not kept:
            raise ConfigError(f"streams[{index}].symbols: none is known to {stream['venue']}: {stream['symbols']}")
        stream["symbols"] = kept
    return Capture.model_validate(data)
