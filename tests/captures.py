"""Access to the shared real exchange captures (never copied into the repo).

The directory is $XTRADER_CAPTURES, else ../shared/data/exchange-captures
beside the repository. Tests that need it skip with a clear reason when it is
absent; `.ci/run` fails instead, because CI always has it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CAPTURES = Path(os.environ.get("XTRADER_CAPTURES", REPO.parent / "shared" / "data" / "exchange-captures"))
FILES = {
    "binance": "binance.jsonl",
    "binance_futures": "binance_futures.jsonl",
    "okx": "okx.jsonl",
    "deribit": "deribit.jsonl",
}


@dataclass(frozen=True)
class Record:
    """One line of a capture file (see the captures' README)."""

    ts: float
    conn: str
    kind: str
    dir: str
    url: str
    msg: str | None


def capture_path(venue: str) -> Path:
    """Path of a venue's capture file; skips the test when the captures are absent."""
    path = CAPTURES / FILES[venue]
    if not path.exists():
        pytest.skip(f"real exchange captures not found at {CAPTURES} (set XTRADER_CAPTURES)")
    return path


def records(venue: str) -> Iterator[Record]:
    """Every record of a venue's capture, in file order."""
    with capture_path(venue).open(encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            yield Record(r["ts"], r["conn"], r["kind"], r["dir"], r["url"], r["msg"])


def ws_frames(venue: str) -> list[bytes]:
    """The received websocket frames of a capture, byte-exact, in order."""
    return [r.msg.encode() for r in records(venue) if r.kind == "ws" and r.dir == "recv" and r.msg is not None]
