"""Every fenced block of docs/guide.md runs, so the guide cannot drift from the code.

- ```python blocks run in-process (fresh globals each) in a working directory holding a
  Parquet dataset at ./xtrader-data (and ./examples), as `xtrader demo` leaves it;
- ```bash blocks run with `bash -euo pipefail` in that directory, the venv's `xtrader` first on PATH;
- ```yaml blocks are capture configurations: validated and planned, as `xtrader capture` would;
- ```text blocks are output or illustration. Preceded by `<!-- guide-test: expected-output -->`,
  one must equal the output of the block before it.

A block that cannot run here is preceded by `<!-- guide-test: skip=KEY -->`, and KEY must be
in SKIPPED below with its reason. Skipped python blocks are still compiled, and what they import
must exist (as must the methods they call on `xtrader.control.attach()`'s handle).
"""

from __future__ import annotations

import ast
import contextlib
import datetime
import importlib.util
import io
import os
import random
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from tests.captures import CAPTURES, capture_path
from xtrader import schema
from xtrader.config import parse_config
from xtrader.metrics import METRICS
from xtrader.plan import Endpoint, build_plan
from xtrader.sinks.parquet import ParquetSink

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "guide.md"

#: Blocks that cannot run in the test suite: key -> why. The guide marks them `<!-- guide-test: skip=KEY -->`.
SKIPPED: dict[str, str] = {
    "install": "clones and installs packages from the network; .ci/run does exactly this in CI",
    "demo": "starts a local Ray for about 30 s; tests/cluster/test_demo.py runs the demo end to end",
    "live": "connects to the real exchanges (needs internet)",
    "ray-cluster": "needs cloud credentials and a Ray cluster (`ray up`, `ray job submit`, cluster.yaml settings)",
    "running-capture": "needs a capture running on Ray (its controller, /metrics endpoint, placement groups)",
}
LANGUAGES = ("python", "bash", "yaml", "text")

_MARKER = re.compile(r"^<!--\s*guide-test:\s*(?P<marker>[^>]*?)\s*-->$")


@dataclass(frozen=True)
class Block:
    """One fenced block of the guide."""

    line: int  # 1-based line of the opening fence
    language: str
    code: str
    marker: str | None  # the guide-test comment on the line(s) just before the fence

    @property
    def skip(self) -> str | None:
        return self.marker.removeprefix("skip=") if self.marker and self.marker.startswith("skip=") else None

    @property
    def id(self) -> str:
        return f"guide.md:{self.line}:{self.language}"


def parse_blocks(text: str) -> list[Block]:
    """The fenced blocks of a markdown text, with the guide-test marker preceding each."""
    blocks: list[Block] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("```"):
            language = line[3:].strip()
            end = next((i for i in range(index + 1, len(lines)) if lines[i].startswith("```")), None)
            if end is None:
                raise ValueError(f"guide.md:{index + 1}: unclosed code fence")
            previous = next((lines[i] for i in range(index - 1, -1, -1) if lines[i].strip()), "")
            found = _MARKER.match(previous.strip())
            code = "\n".join(lines[index + 1 : end]) + "\n"
            blocks.append(Block(index + 1, language, code, found["marker"] if found else None))
            index = end + 1
        else:
            index += 1
    return blocks


BLOCKS = parse_blocks(GUIDE.read_text(encoding="utf-8"))


def runnable(language: str) -> list[Block]:
    return [block for block in BLOCKS if block.language == language and block.skip is None]


def expected_output(block: Block) -> str | None:
    """The text block marked as this block's output, if the next block is one."""
    position = BLOCKS.index(block)
    following = BLOCKS[position + 1] if position + 1 < len(BLOCKS) else None
    if following is not None and following.marker == "expected-output":
        return following.code
    return None


# -- the data the snippets read ---------------------------------------------------------------------------------

VENUE_SYMBOLS = {
    "binance": ("BTCUSDT", "ETHUSDT", "SOLUSDT"),
    "binance_futures": ("BTCUSDT", "ETHUSDT", "SOLUSDT"),
    "okx": ("BTC-USDT", "ETH-USDT", "SOL-USDT"),
    "deribit": ("BTC-PERPETUAL", "ETH-PERPETUAL"),
}
PRICES = {"BTC": 65_000.0, "ETH": 3_200.0, "SOL": 150.0}
#: 20 s across midnight UTC, so the data has two date partitions like any long capture
START_NS = int(datetime.datetime(2026, 1, 15, 23, 59, 50, tzinfo=datetime.UTC).timestamp()) * 1_000_000_000
SECOND = 1_000_000_000


def produce_dataset(root: Path) -> None:
    """The Parquet dataset the guide's snippets read, at `root` (their ./xtrader-data)."""
    synthetic_dataset(root)
    # TODO(issue 4, `xtrader demo`): when the demo is done, replace the line above with the demo's own output:
    # subprocess.run(["xtrader", "demo", "--duration", "10", "--out", str(root)], check=True, timeout=180)


def synthetic_dataset(root: Path) -> None:
    """A small capture of every venue and table, written through the Parquet sink (schemas of xtrader.schema)."""
    rng = random.Random(1)
    rows: dict[str, list[dict[str, object]]] = {table: [] for table in schema.TABLES}
    for exchange, symbols in VENUE_SYMBOLS.items():
        rows["events"].append(_event(exchange, None, START_NS, "connect", "link 1 open"))
        for symbol in symbols:
            _market(rows, rng, exchange, symbol)
        rows["events"].append(_event(exchange, None, START_NS + 20 * SECOND, "disconnect", "link 1 closed: stop"))
    rows["events"].append(_event("okx", "BTC-USDT", START_NS + 12 * SECOND, "gap", "prevSeqId 1012 != seqId 1010"))
    rows["events"].append(_event("okx", "BTC-USDT", START_NS + 12 * SECOND + 1, "resync", "requested"))
    batches = {table: pa.RecordBatch.from_pylist(found, schema=schema.TABLES[table]) for table, found in rows.items()}
    sink = ParquetSink(root, "guide", fsync=False)
    for table, batch in batches.items():
        sink.write(table, batch)
    sink.close()


def _market(rows: dict[str, list[dict[str, object]]], rng: random.Random, exchange: str, symbol: str) -> None:
    """20 s of one instrument: trades, an l2 snapshot then diffs, bbo, and book_snapshots every 5 s."""
    mid = PRICES[symbol[:3]]
    tick = mid * 1e-5
    key = {"exchange": exchange, "symbol": symbol}
    seq = 1_000
    levels = [("bid", mid - tick * (i + 1), rng.uniform(0.1, 2)) for i in range(10)]
    levels += [("ask", mid + tick * (i + 1), rng.uniform(0.1, 2)) for i in range(10)]
    for side, price, size in levels:
        rows["l2"].append(_l2(key, START_NS, START_NS + 1_000, seq, None, side, price, size, True))
    for step in range(1, 21):
        ts = START_NS + step * SECOND - rng.randrange(SECOND // 2)
        received = ts + rng.randrange(1_000_000, 30_000_000)
        mid += rng.choice((-tick, 0.0, tick))
        bid, ask = mid - tick, mid + tick
        exchange_ts = None if exchange == "binance" else ts  # the spot book ticker carries no time
        rows["bbo"].append(
            {**key, "exchange_ts": exchange_ts, "receive_ts": received, "seq": seq + step}
            | {"bid_price": bid, "bid_size": rng.uniform(0.1, 3), "ask_price": ask, "ask_size": rng.uniform(0.1, 3)}
        )
        side = rng.choice(("buy", "sell"))
        trade = {"trade_id": f"{symbol}-{step}", "side": side, "price": ask if side == "buy" else bid, "size": 0.01}
        rows["trades"].append({**key, "exchange_ts": ts + 1_000, "receive_ts": received + 1_000, **trade})
        seq += 1
        book_side = rng.choice(("bid", "ask"))
        rows["l2"].append(
            _l2(
                key, ts, received, seq, seq - 1, book_side, bid if book_side == "bid" else ask, rng.uniform(0, 2), False
            )
        )
        if step % 5 == 0:
            for level in range(5):
                rows["book_snapshots"].append(
                    {**key, "ts": START_NS + step * SECOND, "level": level}
                    | {
                        "bid_price": bid - level * tick,
                        "bid_size": 1.0,
                        "ask_price": ask + level * tick,
                        "ask_size": 1.0,
                    }
                )
    rows["events"].append(_event(exchange, symbol, START_NS + 2_000, "resync", "snapshot seq 1000: 20 levels"))


def _l2(
    key: dict[str, str],
    ts: int,
    received: int,
    seq: int,
    prev_seq: int | None,
    side: str,
    price: float,
    size: float,
    is_snapshot: bool,
) -> dict[str, object]:
    first_seq = seq if key["exchange"].startswith("binance") else None
    header = {**key, "exchange_ts": ts, "receive_ts": received, "seq": seq, "prev_seq": prev_seq}
    return header | {"first_seq": first_seq, "side": side, "price": price, "size": size, "is_snapshot": is_snapshot}


def _event(exchange: str, symbol: str | None, ts: int, kind: str, detail: str) -> dict[str, object]:
    return {"exchange": exchange, "symbol": symbol, "ts": ts, "kind": kind, "detail": detail}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the snippets run: ./xtrader-data (the dataset) and ./examples (the repository's)."""
    directory = tmp_path_factory.mktemp("guide")
    produce_dataset(directory / "xtrader-data")
    (directory / "examples").symlink_to(REPO / "examples")
    return directory


# -- the guide's structure --------------------------------------------------------------------------------------


def test_every_block_has_a_known_language() -> None:
    assert BLOCKS, "no fenced blocks found in docs/guide.md"
    unknown = [block.id for block in BLOCKS if block.language not in LANGUAGES]
    assert not unknown, f"fence languages must be one of {LANGUAGES}: {unknown}"


def test_every_opt_out_is_allowed_with_a_reason_and_every_reason_is_used() -> None:
    used = {block.skip for block in BLOCKS if block.skip is not None}
    unknown = used - set(SKIPPED)
    assert not unknown, f"guide blocks opted out with keys not in SKIPPED: {sorted(unknown)}"
    unused = set(SKIPPED) - used
    assert not unused, f"SKIPPED keys no guide block uses (remove them): {sorted(unused)}"
    markers = {block.marker for block in BLOCKS if block.marker is not None and block.skip is None}
    assert markers <= {"expected-output"}, f"unknown guide-test markers: {markers}"


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.language == "python" and b.skip], ids=lambda block: block.id)
def test_skipped_python_blocks_compile_and_name_what_exists(block: Block) -> None:
    tree = ast.parse(block.code, block.id)
    attached: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            module = importlib.import_module(node.module)
            missing = [alias.name for alias in node.names if not hasattr(module, alias.name)]
            assert not missing, f"{block.id}: {node.module} has no {missing}"
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            called = node.value.func
            if isinstance(called, ast.Name) and called.id == "attach":
                attached.update(t.id for t in node.targets if isinstance(t, ast.Name))
    if attached:
        from xtrader.control import Control

        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in attached:
                assert hasattr(Control, node.attr), f"{block.id}: the attach() handle has no {node.attr}()"


def test_expected_outputs_follow_a_runnable_block() -> None:
    for position, block in enumerate(BLOCKS):
        if block.marker == "expected-output":
            assert block.language == "text", block.id
            assert position > 0, block.id
            before = BLOCKS[position - 1]
            assert before.language in ("python", "bash") and before.skip is None, f"{block.id} follows {before.id}"


def test_text_blocks_hold_no_commands() -> None:
    for block in BLOCKS:
        if block.language == "text":
            assert not any(line.startswith("$ ") for line in block.code.splitlines()), f"{block.id}: use ```bash"


def test_every_metric_is_explained_and_no_other() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    for name in METRICS:
        assert f"| `{name}` |" in text, f"metric {name} is not in the guide's metrics table"
    mentioned = set(re.findall(r"\bxtrader_[a-z0-9_]+", text))
    assert mentioned <= set(METRICS), f"the guide names metrics that do not exist: {sorted(mentioned - set(METRICS))}"


def test_relative_links_resolve() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    anchors = {_anchor(heading) for heading in re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE)}
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        if path:
            assert (GUIDE.parent / path).exists(), f"broken link {target}"
        else:
            assert anchor in anchors, f"broken anchor {target}"


def _anchor(heading: str) -> str:
    return "".join(c for c in heading.strip().lower().replace(" ", "-") if c.isalnum() or c in "-_")


# -- running the blocks -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("block", runnable("python"), ids=lambda block: block.id)
def test_python_block_runs(block: Block, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(workdir)
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(block.code, block.id, "exec"), {"__name__": "__guide__"})
    _check_output(block, output.getvalue())


@pytest.mark.parametrize("block", runnable("bash"), ids=lambda block: block.id)
def test_bash_block_runs(block: Block, workdir: Path) -> None:
    if "XTRADER_CAPTURES" in block.code or "exchange-captures" in block.code:
        capture_path("okx")  # skips when the shared captures are absent (.ci/run fails instead)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "XTRADER_CAPTURES": str(CAPTURES.resolve()),
        "COLUMNS": "120",
    }
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.code],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"{block.id} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    _check_output(block, done.stdout)


@pytest.mark.parametrize("block", runnable("yaml"), ids=lambda block: block.id)
def test_yaml_block_is_a_valid_capture(block: Block) -> None:
    capture = parse_config(yaml.safe_load(block.code), environ={}, source=block.id)
    simulator = None
    if capture.simulator is not None and capture.simulator.enabled:
        simulator = {s.venue: Endpoint("ws://127.0.0.1:1", "http://127.0.0.1:1") for s in capture.streams}
    plan = build_plan(capture, simulator)
    assert plan.connectors, block.id


def _check_output(block: Block, output: str) -> None:
    expected = expected_output(block)
    if expected is not None:
        assert output.strip() == expected.strip(), f"{block.id}: output differs from the guide's expected output"
