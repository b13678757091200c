"""The pure parts of `xtrader bench`: rates, percentiles, ratios, the report's shape, CPU accounting."""

from __future__ import annotations

import os
import time

import pytest

from xtrader.bench.cpu import CpuMeter, used
from xtrader.bench.limits import count_frames
from xtrader.bench.report import ENTRIES, percentiles_ms, rates, ratios, report, text


def test_rates_are_messages_per_wall_and_per_cpu_second() -> None:
    assert rates(1000, 2.0, 0.5) == {
        "messages": 1000,
        "wall_s": 2.0,
        "cpu_s": 0.5,
        "msgs_per_s": 500.0,
        "msgs_per_cpu_s": 2000.0,
    }
    assert rates(10, 0.0, 0.0)["msgs_per_cpu_s"] is None
    with pytest.raises(ValueError):
        rates(10, 1.0, -0.1)


def test_percentiles_are_nearest_rank_in_ms() -> None:
    latencies = [i / 1000 for i in range(1, 1001)]  # 1 ms .. 1000 ms
    assert percentiles_ms(latencies) == {"p50_ms": 500.0, "p99_ms": 990.0, "p999_ms": 999.0}
    assert percentiles_ms([]) == {"p50_ms": None, "p99_ms": None, "p999_ms": None}


def test_ratios_compare_cpu_rates_and_are_null_for_a_skipped_entry() -> None:
    entries = {
        "limit_recv": {"msgs_per_cpu_s": 1_000_000.0},
        "limit_parse": {"msgs_per_cpu_s": 800_000.0},
        "hot_path": {"msgs_per_cpu_s": 200_000.0},
        "xtrader_e2e": {"msgs_per_cpu_s": 50_000.0},
        "xtrader_e2e_fused": {"msgs_per_cpu_s": 75_000.0},
        "cryptofeed": None,
    }
    assert ratios(entries) == {
        "hot_path/limit_parse": 0.25,
        "xtrader_e2e/cryptofeed": None,
        "xtrader_e2e_fused/cryptofeed": None,
        "xtrader_e2e/limit_recv": 0.05,
    }
    entries["cryptofeed"] = {"msgs_per_cpu_s": 25_000.0}
    assert ratios(entries)["xtrader_e2e/cryptofeed"] == 2.0
    assert ratios(entries)["xtrader_e2e_fused/cryptofeed"] == 3.0


def test_report_has_every_entry_and_the_ratios() -> None:
    entry = {**rates(100, 1.0, 1.0), "latency": {"p50_ms": 1.0, "p99_ms": 2.0, "p999_ms": 3.0}}
    result = report({"hot_path": entry, "limit_parse": rates(400, 1.0, 1.0)}, {"cpus": 2})
    assert list(result) == ["machine", *ENTRIES, "ratios"]
    assert result["limit_recv"] is None and result["hot_path"]["msgs_per_cpu_s"] == 100.0
    assert result["ratios"]["hot_path/limit_parse"] == 0.25
    lines = text(result).splitlines()
    assert any(line.startswith("limit_recv") and "skipped" in line for line in lines)
    assert "hot_path/limit_parse: 0.250" in lines
    with pytest.raises(ValueError, match="unknown entries"):
        report({"hotpath": entry}, {})


def test_cpu_used_sums_every_process_and_refuses_a_reading_that_went_back() -> None:
    assert used({1: 1.0, 2: 5.0}, {1: 1.5, 2: 7.0}) == pytest.approx(2.5)
    assert used({1: 1.0, 2: 5.0}, {1: 1.5}) == pytest.approx(0.5)  # pid 2 ended: its share is not known
    with pytest.raises(ValueError, match="not the same process"):
        used({1: 2.0}, {1: 1.0})


def test_cpu_meter_counts_this_process_cpu_not_its_sleep() -> None:
    meter = CpuMeter([os.getpid()])
    meter.start()
    end = time.process_time() + 0.3
    while time.process_time() < end:
        pass
    time.sleep(0.3)
    assert 0.25 <= meter.stop() < 0.55
    with pytest.raises(ValueError):
        CpuMeter([])


def test_count_frames_counts_data_frames_only_and_keeps_a_partial_one() -> None:
    text_frame = b"\x81\x05hello"
    ping = b"\x89\x00"
    long_frame = b"\x82\x7e\x01\x00" + b"x" * 256
    data = text_frame + ping + long_frame + b"\x81\x05hel"
    frames, consumed = count_frames(data)
    assert frames == 2
    assert consumed == len(text_frame + ping + long_frame)


def test_runner_reports_a_failed_entry_and_still_runs_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    from xtrader.bench import limits, runner

    monkeypatch.setattr(runner, "MEMORY_STEPS", 500)

    def broken(data: list[bytes], seconds: float) -> dict[str, object]:
        raise RuntimeError("no parser today")

    network = {"limit_recv", "xtrader_e2e", "xtrader_e2e_fused", "cryptofeed"}
    monkeypatch.setattr(limits, "limit_parse", broken)
    result = runner.run(0.05, network, warmup_s=0.0)
    assert result["limit_parse"] is None
    assert result["errors"] == {"limit_parse": "RuntimeError: no parser today"}
    assert result["hot_path"]["msgs_per_cpu_s"] > 0 and result["hot_path"]["not_applied"] == 0
    assert result["settings"]["batch_rows"] == 2_000  # the realtime preset
    assert result["settings"]["ws_transport"] == "picows"  # the pipeline's default
    assert result["ratios"]["hot_path/limit_parse"] is None
    assert "limit_parse       failed: RuntimeError: no parser today" in text(result).splitlines()
    with pytest.raises(ValueError, match="unknown entries"):
        runner.run(0.05, {"limit-recv"}, warmup_s=0.0)
