"""The capture configuration: whole-plan validation, errors naming the field, presets, overrides, examples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from xtrader.config import (
    ENV_ALIASES,
    ENV_OVERRIDES,
    FUSED_PRESETS,
    MODELS,
    PRESETS,
    ROTATION_PRESETS,
    Capture,
    ParquetSink,
    Pipeline,
    Stream,
    load_config,
    parse_config,
)
from xtrader.errors import ConfigError
from xtrader.venues.base import Subscription

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def capture(**fields: Any) -> dict[str, Any]:
    return {"streams": [{"venue": "binance", "symbols": ["BTCUSDT"]}], **fields}


def error_of(data: dict[str, Any], **kwargs: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, environ=kwargs.pop("environ", {}), **kwargs)
    return str(caught.value)


# -- models ------------------------------------------------------------------------------------------------


def test_a_minimal_capture_fills_in_every_default() -> None:
    config = parse_config(capture(), environ={})
    assert config.name == "xtrader"
    assert config.streams[0].tables == ("trades", "l2", "bbo")
    assert config.streams[0].redundancy == 1
    assert config.streams[0].ws_base is None  # the official endpoint
    assert config.pipeline.policy == "block"
    assert config.pipeline.connection_lifetime_s == 23.5 * 3600
    assert config.sinks.parquet.enabled and not config.sinks.questdb.enabled
    assert config.metrics.host == "127.0.0.1"
    assert config.simulator is None


def test_models_are_frozen() -> None:
    config = parse_config(capture(), environ={})
    with pytest.raises(ValueError, match="frozen"):
        config.pipeline.batch_rows = 5


@pytest.mark.parametrize(("prefix", "model"), MODELS)
def test_every_field_has_a_description_and_unknown_fields_are_forbidden(prefix: str, model: type[BaseModel]) -> None:
    assert model.model_config.get("extra") == "forbid"
    assert model.model_config.get("frozen") is True
    for name, field in model.model_fields.items():
        assert field.description, f"{prefix}.{name} has no description"


def test_stream_subscriptions_carry_the_channel_overrides() -> None:
    stream = Stream(venue="binance", symbols=("BTCUSDT", "ETHUSDT"), tables=("trades", "l2"), channels={"l2": "depth"})
    assert stream.subscriptions() == [
        Subscription("trades", "BTCUSDT"),
        Subscription("trades", "ETHUSDT"),
        Subscription("l2", "BTCUSDT", "depth"),
        Subscription("l2", "ETHUSDT", "depth"),
    ]
    assert stream.id == "binance"


# -- errors name the field and the value ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (capture(stremas=[]), "stremas: unknown field; allowed: name, streams,"),
        (capture(pipeline={"bach_rows": 3}), "pipeline.bach_rows: unknown field; allowed: latency_mode, batch_rows"),
        (
            {"streams": [{"venue": "binance", "symbols": ["BTCUSDT"], "symbol": "X"}]},
            "streams[0].symbol: unknown field; allowed: name, venue, tables, symbols",
        ),
        (capture(sinks={"parquet": {"rooot": "x"}}), "sinks.parquet.rooot: unknown field"),
        ({"streams": [{"venue": "bybit", "symbols": ["BTCUSDT"]}]}, "streams[0].venue: unknown venue 'bybit'; known:"),
        ({"streams": [{"venue": "okx", "symbols": []}]}, "streams[0].symbols: must list at least one"),
        ({"streams": [{"venue": "okx", "symbols": [""]}]}, "streams[0].symbols[0]: String should match pattern"),
        ({"streams": [{"venue": "okx", "symbols": ["BTC USDT"]}]}, "(got 'BTC USDT')"),
        ({"streams": [{"venue": "okx", "symbols": ["A", "B", "A"]}]}, "streams[0].symbols: listed more than once: 'A'"),
        ({"streams": [{"venue": "okx", "symbols": ["A"], "tables": ["l3"]}]}, "streams[0].tables[0]: Input should be"),
        ({"streams": [{"venue": "okx", "symbols": ["A"], "tables": []}]}, "streams[0].tables: must list at least one"),
        ({"streams": [{"venue": "okx", "symbols": ["A"], "redundancy": 0}]}, "streams[0].redundancy: Input should be"),
        ({"streams": [{"venue": "okx", "symbols": ["A"], "ws_base": "http://x"}]}, "streams[0].ws_base: String should"),
        (
            {"streams": [{"venue": "okx", "symbols": ["A"], "tables": ["trades"], "channels": {"l2": "books"}}]},
            "channels: override for 'l2', which is not in tables",
        ),
        ({"streams": []}, "streams: must list at least one stream"),
        ({}, "streams: Field required"),
        (capture(pipeline={"policy": "fast"}), "pipeline.policy: Input should be 'block' or 'lossy' (got 'fast')"),
        (
            capture(pipeline={"batch_rows": 0}),
            "pipeline.batch_rows: Input should be greater than or equal to 1 (got 0)",
        ),
        (
            capture(pipeline={"latency_mode": "turbo"}),
            "pipeline.latency_mode: Input should be 'realtime' or 'archival'",
        ),
        (
            capture(pipeline={"reconnect_backoff_base_s": 10, "reconnect_backoff_cap_s": 5}),
            "reconnect_backoff_cap_s=5 is below reconnect_backoff_base_s=10",
        ),
        (capture(pipeline={"placement_strategy": "pack"}), "pipeline.placement_strategy: Input should be 'PACK'"),
        (capture(metrics={"port": 70000}), "metrics.port: Input should be less than or equal to 65535 (got 70000)"),
        (capture(sinks={"questdb": {"conf": "addr=localhost:9000;"}}), "sinks.questdb.conf: must start with http::"),
        (capture(sinks={"questdb": {"conf": "http::host=x;"}}), "sinks.questdb.conf: must name the server"),
        (capture(sinks={"parquet": {"enabled": False}}), "sinks: no sink is enabled"),
        (capture(simulator={"faults": "drop=1"}), "simulator.faults: unknown fault 'drop'"),
        (
            capture(simulator={"faults": "drop_rate=2"}),
            "simulator.faults: fault drop_rate='2': a rate is a probability",
        ),
    ],
)
def test_errors_name_the_field_and_the_value(data: dict[str, Any], expected: str) -> None:
    assert expected in error_of(data)


def test_every_error_is_reported_at_once() -> None:
    message = error_of({"streams": [{"venue": "bybit", "symbols": ["A"]}], "pipeline": {"policy": "x"}})
    assert "streams[0].venue" in message and "pipeline.policy" in message


def test_duplicate_stream_ids_are_rejected_and_a_name_fixes_it() -> None:
    two = [{"venue": "binance", "symbols": ["BTCUSDT"]}, {"venue": "binance", "symbols": ["ETHUSDT"]}]
    assert "streams[1].name: duplicate stream id 'binance' (also streams[0])" in error_of({"streams": two})
    two[1]["name"] = "binance-eth"
    assert [s.id for s in parse_config({"streams": two}, environ={}).streams] == ["binance", "binance-eth"]


def test_the_same_subscription_in_two_streams_is_rejected() -> None:
    streams = [
        {"venue": "okx", "symbols": ["BTC-USDT"], "tables": ["trades"]},
        {"name": "again", "venue": "okx", "symbols": ["ETH-USDT", "BTC-USDT"], "tables": ["bbo", "trades"]},
    ]
    message = error_of({"streams": streams})
    assert "streams[1].symbols: okx trades 'BTC-USDT' is already captured by streams[0]" in message


def test_a_simulated_stream_needs_the_simulator() -> None:
    data = {"streams": [{"venue": "okx", "symbols": ["BTC-USDT"], "simulated": True}]}
    assert "streams[0].simulated: true, but the simulator is not enabled" in error_of(data)
    assert parse_config({**data, "simulator": {}}, environ={}).simulator is not None


def test_streams_follow_the_simulator_switch_unless_pinned() -> None:
    data = {
        "simulator": {"enabled": True},
        "streams": [
            {"venue": "okx", "symbols": ["BTC-USDT"]},
            {"venue": "deribit", "symbols": ["BTC-PERPETUAL"], "simulated": False},
        ],
    }
    config = parse_config(data, environ={})
    assert [config.is_simulated(s) for s in config.streams] == [True, False]
    live = parse_config(data, environ={}, overrides={"simulator.enabled": False})
    assert [live.is_simulated(s) for s in live.streams] == [False, False]


# -- presets ---------------------------------------------------------------------------------------------------


def test_the_field_defaults_are_the_realtime_preset() -> None:
    pipeline = Pipeline()
    assert {name: getattr(pipeline, name) for name in PRESETS["realtime"]} == PRESETS["realtime"]


def test_archival_fills_in_what_is_left_out_and_explicit_values_win() -> None:
    pipeline = Pipeline(latency_mode="archival", batch_ms=250)
    assert pipeline.batch_ms == 250
    assert pipeline.batch_rows == PRESETS["archival"]["batch_rows"]
    assert pipeline.row_group_rows == PRESETS["archival"]["row_group_rows"]
    assert pipeline.flush_interval_s == PRESETS["archival"]["flush_interval_s"]


@pytest.mark.parametrize("mode", ["realtime", "archival"])
def test_fused_changes_its_preset_fields_only_and_explicit_values_win(mode: str) -> None:
    fused = parse_config(capture(pipeline={"latency_mode": mode, "fused": True}), environ={}).pipeline
    by_env = parse_config(capture(pipeline={"latency_mode": mode}), environ={"XTRADER_FUSED": "1"}).pipeline
    expected = {**PRESETS[mode], **FUSED_PRESETS[mode]}
    assert {name: getattr(fused, name) for name in PRESETS[mode]} == expected
    assert {name: getattr(by_env, name) for name in PRESETS[mode]} == expected
    assert Pipeline(latency_mode=mode, fused=True, batch_rows=3_000).batch_rows == 3_000
    assert Pipeline(latency_mode=mode, fused=False).batch_rows == PRESETS[mode]["batch_rows"]
    if mode == "realtime":
        assert fused.batch_rows == 10_000


def test_a_null_preset_field_takes_the_preset() -> None:
    config = parse_config(capture(pipeline={"latency_mode": "archival", "batch_rows": None}), environ={})
    assert config.pipeline.batch_rows == PRESETS["archival"]["batch_rows"]


def test_parquet_rotation_follows_its_mode_or_the_latency_mode() -> None:
    assert ParquetSink().rotation("realtime").seconds == ROTATION_PRESETS["realtime"]["rotation_seconds"]
    assert ParquetSink().rotation("archival").rows == ROTATION_PRESETS["archival"]["rotation_rows"]
    assert ParquetSink(mode="archival").rotation("realtime").bytes == ROTATION_PRESETS["archival"]["rotation_bytes"]
    assert ParquetSink(rotation_seconds=5).rotation("archival").seconds == 5.0


# -- environment and command line ---------------------------------------------------------------------------------


def test_every_pipeline_setting_has_an_environment_variable() -> None:
    for name in Pipeline.model_fields:
        assert ENV_OVERRIDES[f"XTRADER_{name.upper()}"] == ("pipeline", name)


def test_environment_variables_name_distinct_fields() -> None:
    assert len(set(ENV_OVERRIDES.values())) == len(ENV_OVERRIDES)


def test_environment_beats_the_file_and_the_command_line_beats_both() -> None:
    data = capture(pipeline={"batch_rows": 100, "policy": "block", "max_inflight": 2})
    environ = {"XTRADER_BATCH_ROWS": "200", "XTRADER_POLICY": "lossy", "XTRADER_UNRELATED": "x"}
    config = parse_config(data, environ=environ, overrides={"pipeline.policy": "block"})
    assert config.pipeline.batch_rows == 200  # env over file
    assert config.pipeline.policy == "block"  # command line over env
    assert config.pipeline.max_inflight == 2  # file over default


def test_a_bare_pipeline_name_is_a_command_line_override_of_the_pipeline() -> None:
    config = parse_config(capture(), environ={}, overrides={"latency_mode": "archival", "policy": "lossy"})
    assert (config.pipeline.latency_mode, config.pipeline.policy) == ("archival", "lossy")


def test_the_latency_mode_from_the_environment_applies_its_preset() -> None:
    config = parse_config(capture(), environ={"XTRADER_LATENCY_MODE": "archival"})
    assert config.pipeline.batch_ms == PRESETS["archival"]["batch_ms"]


def test_environment_values_are_parsed_by_the_field_type() -> None:
    environ = {
        "XTRADER_CONNECTOR_CPUS": "0.5",
        "XTRADER_VALIDATE_SYMBOLS": "false",
        "XTRADER_METRICS_PORT": "9300",
        "XTRADER_PARQUET_ROOT": "/data/x",
        "XTRADER_QUESTDB_ENABLED": "1",
        "XTRADER_QUESTDB_CONF": "http::addr=db:9000;protocol_version=1;",
    }
    config = parse_config(capture(), environ=environ)
    assert config.pipeline.connector_cpus == 0.5
    assert config.pipeline.validate_symbols is False
    assert config.metrics.port == 9300
    assert config.sinks.parquet.root == "/data/x"
    assert config.sinks.questdb.enabled
    assert config.sinks.questdb.conf.get_secret_value().startswith("http::addr=db:9000")


def test_a_bad_environment_value_names_the_variable() -> None:
    message = error_of(capture(), environ={"XTRADER_MAX_INFLIGHT": "lots"})
    assert "pipeline.max_inflight: Input should be a valid integer" in message
    assert "(got 'lots') [from environment XTRADER_MAX_INFLIGHT]" in message


def test_a_bad_command_line_value_says_so() -> None:
    assert "[from command line]" in error_of(capture(), overrides={"policy": "fast"})


def test_an_override_of_an_unknown_field_is_rejected() -> None:
    assert "override 'pipelin.policy': unknown field 'pipelin'" in error_of(capture(), overrides={"pipelin.policy": 1})


def test_the_seeds_sink_variables_are_aliases_of_the_pipeline_fields() -> None:
    environ = {"XTRADER_SINK_FLUSH_MS": "250", "XTRADER_SINK_BATCH": "1234", "XTRADER_SINK_LOSSY": "true"}
    pipeline = parse_config(capture(), environ=environ).pipeline
    assert (pipeline.flush_interval_s, pipeline.batch_rows, pipeline.policy) == (0.25, 1234, "lossy")
    # like every environment value, they beat the file
    data = capture(pipeline={"policy": "lossy", "flush_interval_s": 5})
    pipeline = parse_config(data, environ={"XTRADER_SINK_LOSSY": "0", "XTRADER_SINK_FLUSH_MS": "1500"}).pipeline
    assert (pipeline.policy, pipeline.flush_interval_s) == ("block", 1.5)
    for value, policy in (("1", "lossy"), ("YES", "lossy"), ("on", "lossy"), ("false", "block"), ("off", "block")):
        assert parse_config(capture(), environ={"XTRADER_SINK_LOSSY": value}).pipeline.policy == policy


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (
            {"XTRADER_SINK_BATCH": "lots"},
            "pipeline.batch_rows: Input should be a valid integer, unable to parse string as an integer "
            "(got 'lots') [from environment XTRADER_SINK_BATCH]",
        ),
        (
            {"XTRADER_SINK_BATCH": "0"},
            "pipeline.batch_rows: Input should be greater than or equal to 1 (got '0') "
            "[from environment XTRADER_SINK_BATCH]",
        ),
        (
            {"XTRADER_SINK_FLUSH_MS": "soon"},
            "pipeline.flush_interval_s: Input should be a valid number, unable to parse string as a number "
            "(got 'soon') [from environment XTRADER_SINK_FLUSH_MS]",
        ),
        (
            {"XTRADER_SINK_FLUSH_MS": "0"},
            "pipeline.flush_interval_s: Input should be greater than 0 (got 0.0) "
            "[from environment XTRADER_SINK_FLUSH_MS='0' ms]",
        ),
        (
            {"XTRADER_SINK_LOSSY": "maybe"},
            "pipeline.policy: must be true or false (1/0, yes/no, on/off) (got 'maybe') "
            "[from environment XTRADER_SINK_LOSSY]",
        ),
    ],
)
def test_a_bad_alias_value_names_the_field_and_the_variable(environ: dict[str, str], expected: str) -> None:
    assert expected in error_of(capture(), environ=environ)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (
            {"XTRADER_SINK_FLUSH_MS": "500", "XTRADER_FLUSH_INTERVAL_S": "2"},
            "pipeline.flush_interval_s: environment XTRADER_SINK_FLUSH_MS='500' conflicts with "
            "XTRADER_FLUSH_INTERVAL_S='2'; set only one of them",
        ),
        (
            {"XTRADER_SINK_BATCH": "100", "XTRADER_BATCH_ROWS": "200"},
            "pipeline.batch_rows: environment XTRADER_SINK_BATCH='100' conflicts with XTRADER_BATCH_ROWS='200'",
        ),
        (
            {"XTRADER_SINK_LOSSY": "true", "XTRADER_POLICY": "block"},
            "pipeline.policy: environment XTRADER_SINK_LOSSY='true' conflicts with XTRADER_POLICY='block'",
        ),
    ],
)
def test_an_alias_conflicting_with_its_canonical_variable_names_both(environ: dict[str, str], expected: str) -> None:
    assert expected in error_of(capture(), environ=environ)


def test_an_alias_agreeing_with_its_canonical_variable_is_accepted_and_errors_are_reported_together() -> None:
    environ = {"XTRADER_SINK_FLUSH_MS": "2000", "XTRADER_FLUSH_INTERVAL_S": "2", "XTRADER_SINK_LOSSY": "yes"}
    pipeline = parse_config(capture(), environ={**environ, "XTRADER_POLICY": "lossy"}).pipeline
    assert (pipeline.flush_interval_s, pipeline.policy) == (2.0, "lossy")
    message = error_of(capture(pipeline={"policy": "fast"}), environ={"XTRADER_SINK_LOSSY": "maybe"})
    assert "pipeline.policy: must be true or false" in message and "(got 'fast')" in message
    assert set(ENV_ALIASES) == {"XTRADER_SINK_FLUSH_MS", "XTRADER_SINK_BATCH", "XTRADER_SINK_LOSSY"}
    assert all(alias.canonical in ENV_OVERRIDES for alias in ENV_ALIASES.values())


def test_the_capture_driver_reads_the_aliases_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`xtrader capture` / `python -m jobs.capture` load through the same environment layer."""
    import yaml

    from jobs.capture import load_config as driver_load_config

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(capture()))
    monkeypatch.setenv("XTRADER_SINK_BATCH", "777")
    monkeypatch.setenv("XTRADER_SINK_LOSSY", "true")
    pipeline = driver_load_config(path).pipeline
    assert (pipeline.batch_rows, pipeline.policy) == (777, "lossy")
    monkeypatch.setenv("XTRADER_BATCH_ROWS", "778")
    with pytest.raises(ConfigError, match="XTRADER_SINK_BATCH='777' conflicts with XTRADER_BATCH_ROWS='778'"):
        driver_load_config(path)


def test_os_environ_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XTRADER_BATCH_ROWS", "321")
    assert parse_config(capture()).pipeline.batch_rows == 321


# -- files -------------------------------------------------------------------------------------------------------


def test_yaml_and_json_files_load_alike(tmp_path: Path) -> None:
    import yaml

    data = capture(name="files", pipeline={"policy": "lossy"})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    (tmp_path / "c.json").write_text(json.dumps(data))
    assert load_config(tmp_path / "c.yaml", environ={}) == load_config(tmp_path / "c.json", environ={})


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("c.yaml", "streams: [unclosed", "not valid YAML"),
        ("c.json", "{", "not valid JSON"),
        ("c.yaml", "- a list", "the top level must be a mapping"),
        ("c.yaml", "", "the top level must be a mapping"),
        ("c.yaml", "streams:\n  - venue: okx\n    symbols: [A]\n    redundancy: -1\n", "streams[0].redundancy"),
    ],
)
def test_bad_files_name_the_file_and_the_problem(tmp_path: Path, name: str, text: str, expected: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert str(path) in str(caught.value) and expected in str(caught.value)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml", environ={})


# -- the examples --------------------------------------------------------------------------------------------------


def test_the_simulator_example_captures_every_table_of_all_four_venues() -> None:
    config = load_config(EXAMPLES / "simulator.yaml", environ={})
    assert {s.venue for s in config.streams} == {"binance", "binance_futures", "okx", "deribit"}
    assert all(set(s.tables) == {"trades", "l2", "bbo"} for s in config.streams)
    assert config.simulator is not None and config.simulator.enabled
    assert all(config.is_simulated(s) for s in config.streams)


def test_the_simulator_example_goes_live_by_changing_one_value() -> None:
    config = load_config(EXAMPLES / "simulator.yaml", environ={}, overrides={"simulator.enabled": False})
    assert not any(config.is_simulated(s) for s in config.streams)


def test_the_live_example_uses_the_official_endpoints_and_real_symbols() -> None:
    config = load_config(EXAMPLES / "live.yaml", environ={})
    assert config.simulator is None
    assert all(s.ws_base is None and s.rest_base is None for s in config.streams)
    symbols = {s.venue: s.symbols for s in config.streams}
    assert "BTCUSDT" in symbols["binance"] and "BTCUSDT" in symbols["binance_futures"]
    assert "BTC-USDT" in symbols["okx"] and "BTC-PERPETUAL" in symbols["deribit"]


def test_capture_round_trips_through_json() -> None:
    config = load_config(EXAMPLES / "live.yaml", environ={})
    assert Capture.model_validate_json(config.model_dump_json()) == config


def test_the_placement_timeout_comes_from_the_environment_too() -> None:
    """A job submitted to an autoscaling cluster may wait for nodes: its runtime_env can say how long."""
    config = parse_config(capture(), environ={"XTRADER_PLACEMENT_TIMEOUT_S": "600"})
    assert config.cluster.placement_timeout_s == 600.0
    assert "[from environment XTRADER_PLACEMENT_TIMEOUT_S]" in error_of(
        capture(), environ={"XTRADER_PLACEMENT_TIMEOUT_S": "-1"}
    )


def test_the_websocket_transport_is_picows_unless_set_and_a_bad_one_names_the_field() -> None:
    assert parse_config(capture(), environ={}).pipeline.ws_transport == "picows"
    config = parse_config(capture(), environ={"XTRADER_WS_TRANSPORT": "websockets"})
    assert config.pipeline.ws_transport == "websockets"
    with pytest.raises(ConfigError, match="ws_transport") as raised:
        parse_config(capture(), environ={"XTRADER_WS_TRANSPORT": "aiohttp"})
    assert "XTRADER_WS_TRANSPORT" in str(raised.value)
