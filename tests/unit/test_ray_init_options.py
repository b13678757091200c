"""Which Ray a capture joins: `address=None` would join any Ray another user started on the machine with `ray
start` (a helper's `xtrader demo` failed so: "When connecting to an existing cluster, num_cpus ... must not be
provided"); a capture with no cluster configured starts a local Ray of its own."""

from __future__ import annotations

import pytest

from jobs.demo import demo_capture
from jobs.run import init_options


def test_no_cluster_configured_starts_a_local_ray_of_its_own(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    options = init_options(demo_capture(str(tmp_path)), 6.0)
    assert options["address"] == "local"
    assert options["num_cpus"] >= 8


def test_under_ray_job_submit_the_jobs_cluster_is_joined(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "http://127.0.0.1:8265")
    options = init_options(demo_capture(str(tmp_path)), 6.0)
    assert options["address"] is None  # ray.init reads RAY_ADDRESS
    assert "num_cpus" not in options  # an existing cluster refuses it


def test_a_configured_address_is_kept(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    capture = demo_capture(str(tmp_path))
    capture = capture.model_copy(update={"cluster": capture.cluster.model_copy(update={"address": "auto"})})
    options = init_options(capture, 6.0, {"namespace": "mine"})
    assert options["address"] == "auto"
    assert options["namespace"] == "mine"
    assert "num_cpus" not in options
