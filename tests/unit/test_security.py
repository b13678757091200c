"""Security of the configuration: listeners bind loopback unless configured (and the value is checked), and
credentials never show in a repr, a str, a JSON dump, an error or a log line."""

from __future__ import annotations

import inspect
import logging
import secrets
from typing import Any

import pytest
from pydantic import ValidationError

from actors.sink import open_sink
from xtrader.config import Capture, Metrics, QuestDBSink, Simulator, parse_config
from xtrader.errors import ConfigError
from xtrader.metrics import MetricsServer
from xtrader.plan import build_plan
from xtrader.redact import MASK, redact_conf
from xtrader.simulator import cli as simulator_cli
from xtrader.simulator.server import Simulator as SimulatorServer

STREAMS = [{"venue": "binance", "tables": ["trades"], "symbols": ["BTCUSDT"]}]


# -- listeners ----------------------------------------------------------------------------------------------------


def test_every_listener_defaults_to_loopback() -> None:
    assert Metrics().host == "127.0.0.1"
    assert Simulator().host == "127.0.0.1"
    assert inspect.signature(MetricsServer).parameters["host"].default == "127.0.0.1"
    assert inspect.signature(SimulatorServer).parameters["host"].default == "127.0.0.1"
    assert simulator_cli._parser().parse_args([]).host == "127.0.0.1"


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "0.0.0.0", "::", "10.1.2.3", "node-7.internal"])
def test_a_listener_host_is_an_address_or_a_hostname(host: str) -> None:
    assert Metrics(host=host).host == host
    assert Simulator(host=host).host == host


@pytest.mark.parametrize(
    "host", ["127.0.0.1:9188", "http://127.0.0.1", "0.0.0.0/0", "local host", "-bad", "a..b", "999.1.1.1", "*"]
)
def test_a_listener_host_that_is_not_an_address_is_refused(host: str) -> None:
    for model in (Metrics, Simulator):
        with pytest.raises(ValidationError, match="an IP address or a host name"):
            model(host=host)
    with pytest.raises(ConfigError, match=r"metrics\.host: .*an IP address or a host name"):
        parse_config({"streams": STREAMS, "metrics": {"host": host}})


# -- credentials --------------------------------------------------------------------------------------------------


def secret_conf() -> tuple[str, list[str]]:
    password, token = secrets.token_hex(12), secrets.token_urlsafe(24)
    conf = f"https::addr=db.example:9000;username=capture;password={password};token={token};protocol_version=2;"
    return conf, [password, token]


def questdb_capture(conf: str, **extra: Any) -> Capture:
    return parse_config({"streams": STREAMS, "sinks": {"questdb": {"enabled": True, "conf": conf}}, **extra})


def shown(capture: Capture) -> str:
    """Every way the configuration is usually shown: repr, str, JSON, the plan's repr, a formatted f-string."""
    plan = build_plan(capture)
    return "\n".join(
        [
            repr(capture),
            str(capture),
            capture.model_dump_json(),
            f"{capture}",
            repr(capture.sinks.questdb),
            str(capture.sinks.questdb.conf),
            repr(plan),
            repr(capture.model_dump()),
        ]
    )


def test_the_config_never_shows_a_questdb_credential() -> None:
    conf, values = secret_conf()
    capture = questdb_capture(conf)
    text = shown(capture)
    for value in values:
        assert value not in text
    assert "password=***" in text and "token=***" in text  # the rest stays readable
    assert "addr=db.example:9000" in text and "username=capture" in text
    assert capture.sinks.questdb.conf.get_secret_value() == conf  # the sink gets it whole


def test_a_credential_from_the_environment_is_hidden_too() -> None:
    conf, values = secret_conf()
    capture = parse_config(
        {"streams": STREAMS, "sinks": {"questdb": {"enabled": True}}}, environ={"XTRADER_QUESTDB_CONF": conf}
    )
    assert capture.sinks.questdb.conf.get_secret_value() == conf
    for value in values:
        assert value not in shown(capture)


def test_a_config_error_never_shows_a_credential() -> None:
    conf, values = secret_conf()
    for bad in (conf.replace("https::", "ftp::"), conf.replace("addr=", "host=")):
        with pytest.raises(ConfigError) as caught:
            questdb_capture(bad)
        assert "sinks.questdb.conf" in str(caught.value)
        for value in values:
            assert value not in str(caught.value)
    with pytest.raises(ConfigError) as caught:  # another field wrong: the message is about it alone
        questdb_capture(conf, metrics={"port": -1})
    for value in values:
        assert value not in str(caught.value)


def test_a_round_trip_keeps_the_credential() -> None:
    """The driver copies a capture by model_dump / model_validate (symbols dropped, streams added)."""
    conf, _ = secret_conf()
    capture = questdb_capture(conf)
    again = Capture.model_validate(capture.model_dump())
    assert again.sinks.questdb.conf.get_secret_value() == conf
    assert again == capture


def test_the_questdb_sink_connects_with_the_whole_conf(tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    password = secrets.token_hex(12)
    conf = f"http::addr=127.0.0.1:1;username=capture;password={password};protocol_version=1;"
    capture = parse_config(
        {
            "streams": STREAMS,
            "sinks": {
                "questdb": {"enabled": True, "conf": conf, "spill_dir": str(tmp_path / "spill")},
                "parquet": {"root": str(tmp_path / "data")},
            },
        }
    )
    spec = next(s for s in build_plan(capture).sinks if isinstance(s.config, QuestDBSink))
    caplog.set_level(logging.DEBUG)
    sink = open_sink(spec, "w")
    assert password in sink.conf
    assert password not in caplog.text


@pytest.mark.parametrize(
    ("conf", "expected"),
    [
        ("http::addr=a:1;password=p;", f"http::addr=a:1;password={MASK};"),
        ("http::addr=a:1;token=t;", f"http::addr=a:1;token={MASK};"),
        (
            "tcp::addr=a:1;username=k;token=d;token_x=x;token_y=y;",
            f"tcp::addr=a:1;username=k;token={MASK};token_x={MASK};token_y={MASK};",
        ),
        ("http::addr=a:1;password=p;;q;;;protocol_version=1;", f"http::addr=a:1;password={MASK};protocol_version=1;"),
        ("http::addr=a:1;PASSWORD=p", f"http::addr=a:1;PASSWORD={MASK}"),
        ("http::addr=localhost:9000;protocol_version=1;", "http::addr=localhost:9000;protocol_version=1;"),
    ],
)
def test_redact_conf(conf: str, expected: str) -> None:
    assert redact_conf(conf) == expected
