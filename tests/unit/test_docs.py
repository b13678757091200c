"""Generated references are current: regenerate them all with `python -m xtrader.docs`."""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson
import pytest

from xtrader import docs, schema
from xtrader.clock import Receipt
from xtrader.config import ENV_ALIASES, ENV_OVERRIDES, MODELS
from xtrader.venues import VENUES, venue

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(docs.GENERATORS))
def test_generated_reference_is_current(name: str) -> None:
    render, filename = docs.GENERATORS[name]
    current = (ROOT / "docs" / filename).read_text(encoding="utf-8")
    assert current == render(), f"docs/{filename} is stale: run `python -m xtrader.docs {name}`"


def test_docs_config_md_is_current() -> None:
    current = (ROOT / "docs" / "config.md").read_text(encoding="utf-8")
    assert current == docs.config_markdown(), "docs/config.md is stale: run `python -m xtrader.docs config`"


def test_every_field_and_environment_variable_is_documented() -> None:
    text = docs.config_markdown()
    for prefix, model in MODELS:
        for name in model.model_fields:
            path = f"{prefix}.{name}" if prefix else name
            assert f"| `{path}` |" in text, path
    for variable in ENV_OVERRIDES:
        assert f"`{variable}`" in text, variable
    for alias in ENV_ALIASES:
        assert f"| `{alias}` |" in text, alias


def test_check_fails_on_a_stale_file_and_writing_fixes_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "config.md"
    target.write_text("old\n", encoding="utf-8")
    assert docs.main(["config", "--check", "--output", str(target)]) == 1
    assert "is stale" in capsys.readouterr().err
    assert docs.main(["config", "--output", str(target)]) == 0
    assert docs.main(["config", "--check", "--output", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == docs.config_markdown()


def test_without_a_name_every_reference_is_written_then_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(docs, "DOCS", tmp_path)
    assert docs.main(["--check"]) == 1  # nothing written yet
    assert docs.main([]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f for _, f in docs.GENERATORS.values())
    assert docs.main(["--check"]) == 0
    (tmp_path / "tables.md").write_text("edited by hand\n", encoding="utf-8")
    capsys.readouterr()
    assert docs.main(["--check"]) == 1
    assert capsys.readouterr().err.strip() == f"{tmp_path / 'tables.md'} is stale: run python -m xtrader.docs tables"


def test_output_needs_a_reference_name(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        docs.main(["--output", str(tmp_path / "x.md")])


# -- docs/tables.md ---------------------------------------------------------------------------------------------


def test_every_table_and_column_is_documented_with_type_and_meaning() -> None:
    text = docs.tables_markdown()
    for table, table_schema in {**schema.TABLES, "L2_WIRE": schema.L2_WIRE, "L2_MESSAGES": schema.L2_MESSAGES}.items():
        assert f"## `{table}`" in text or f"### `{table}`" in text, table
        for field in table_schema:
            assert field.metadata and field.metadata[b"doc"], f"{table}.{field.name} has no doc"
            assert f"| `{field.name}` | `" in text, f"{table}.{field.name}"


def test_every_venue_says_where_each_stored_column_comes_from() -> None:
    docs.tables_markdown()  # loads every venue module
    assert set(VENUES) == {"binance", "binance_futures", "okx", "deribit"}
    for name, cls in VENUES.items():
        for table in ("trades", "l2", "bbo"):
            wire_columns = set(schema.TABLES[table].names) - {"exchange", "receive_ts"}
            assert set(cls.field_sources[table]) == wire_columns, f"{name} {table}"
        for table, sources in cls.field_sources.items():
            known = {"l2_wire": schema.L2_WIRE, "l2_messages": schema.L2_MESSAGES}.get(table) or schema.TABLES[table]
            assert set(sources) <= set(known.names), f"{name} {table}: unknown columns"
            assert all(text.strip() for text in sources.values()), f"{name} {table}: empty source"


def test_a_missing_source_fails_generation(monkeypatch: pytest.MonkeyPatch) -> None:
    cls = VENUES["deribit"]
    trimmed = {**cls.field_sources, "bbo": {k: v for k, v in cls.field_sources["bbo"].items() if k != "seq"}}
    monkeypatch.setattr(cls, "field_sources", trimmed)
    with pytest.raises(KeyError, match=r"deribit.*'seq'"):
        docs.tables_markdown()


@pytest.mark.parametrize(
    ("name", "depth_update", "expected_ms"),
    [
        # the example in the sources: USD-M book time is T (transaction time), spot's is E (event time)
        ("binance_futures", {"E": 2_000, "T": 1_000, "pu": 9}, 1_000),
        ("binance", {"E": 2_000}, 2_000),
    ],
)
def test_binance_depth_exchange_ts_source_is_true(name: str, depth_update: dict[str, int], expected_ms: int) -> None:
    frame = {"e": "depthUpdate", "s": "BTCUSDT", "U": 10, "u": 11, "b": [["1.0", "2"]], "a": [], **depth_update}
    target = venue(name)
    out = target.columns()
    target.parse(orjson.dumps({"stream": "btcusdt@depth@100ms", "data": frame}), Receipt(5, 0), out)
    l2 = out.flush().tables()["l2"]
    assert l2.column("exchange_ts").cast("int64").to_pylist() == [expected_ms * 1_000_000]
    source = target.field_sources["l2"]["exchange_ts"]
    assert source.startswith("`T`" if name == "binance_futures" else "`E`")


# -- docs/cli.md ------------------------------------------------------------------------------------------------


def test_every_command_and_flag_is_documented() -> None:
    from xtrader.cli import build_parser
    from xtrader.simulator.cli import _parser as simulator_parser

    text = docs.cli_markdown()
    commands = docs._subcommands(build_parser())
    assert set(commands) >= {"verify", "simulate", "capture", "demo"}
    parsers = {name: sub for name, (_, sub) in commands.items()}
    parsers["simulate"] = simulator_parser()  # REMAINDER-delegated: documented from the simulator's parser
    for name, parser in parsers.items():
        section = text.split(f"## `xtrader {name}`", 1)[1].split("\n## ", 1)[0]
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            spelled = action.option_strings[-1] if action.option_strings else (action.metavar or action.dest)
            assert f"`{spelled}" in section or f", {spelled}" in section, f"xtrader {name}: {spelled}"


def test_a_delegating_command_without_a_delegate_fails_generation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(docs, "_DELEGATED", {})
    with pytest.raises(ValueError, match="simulate passes its arguments on"):
        docs.cli_markdown()
