"""cluster.yaml is a valid Ray cluster-launcher config, consistent with what docs/guide.md tells users.

Validated with Ray's own `validate_config` (its ray-schema.json, as `ray up` does), before and after
`prepare_config` fills in the provider's defaults.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "cluster.yaml"


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    loaded = yaml.safe_load(CLUSTER.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_ray_accepts_it(config: dict[str, Any]) -> None:
    pytest.importorskip("jsonschema")
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(copy.deepcopy(config))
    validate_config(prepare_config(copy.deepcopy(config)))


def test_ray_would_reject_a_wrong_field(config: dict[str, Any]) -> None:
    """The validator is real: an unknown node-type field fails it."""
    jsonschema = pytest.importorskip("jsonschema")
    from ray.autoscaler._private.util import validate_config

    wrong = copy.deepcopy(config)
    wrong["available_node_types"]["connector.node"]["min_worker"] = 1
    with pytest.raises(jsonschema.ValidationError):
        validate_config(wrong)


def test_node_types_scale_connectors(config: dict[str, Any]) -> None:
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    workers = {name: t for name, t in types.items() if name != config["head_node_type"]}
    assert head["resources"]["CPU"] >= 1
    assert workers, "no worker node type for the autoscaler to add"
    for node_type in workers.values():
        assert node_type["resources"]["CPU"] >= 1
        assert 0 <= node_type["min_workers"] <= node_type["max_workers"] <= config["max_workers"]
    assert sum(t["max_workers"] for t in workers.values()) >= 1
    assert 0 < config["idle_timeout_minutes"] <= 60


def test_xtrader_is_installed_from_the_working_dir(config: dict[str, Any]) -> None:
    assert config["file_mounts"]["~/xtrader"] == "."
    setup = " ".join(config["setup_commands"])
    assert "-e ~/xtrader" in setup
    import ray

    assert f"ray[default]=={ray.__version__}" in setup, "nodes must run the client's Ray version"


def test_token_authentication_and_stop_wait_as_the_guide_says(config: dict[str, Any]) -> None:
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    head = " ".join(config["head_start_ray_commands"])
    workers = " ".join(config["worker_start_ray_commands"])
    assert "RAY_AUTH_MODE=token" in head and "RAY_AUTH_MODE=token" in workers
    wait = re.search(r"RAY_JOB_STOP_WAIT_TIME_S=(\d+)", head)
    assert wait is not None and int(wait[1]) >= 30, "ray job stop must leave the capture time to drain"
    assert "--autoscaling-config=~/ray_bootstrap_config.yaml" in head
    guide = (REPO / "docs" / "guide.md").read_text(encoding="utf-8")
    assert "cluster.yaml" in guide and "RAY_JOB_STOP_WAIT_TIME_S" in guide


def test_placeholders_are_marked(config: dict[str, Any]) -> None:
    text = CLUSTER.read_text(encoding="utf-8")
    for node_type in config["available_node_types"].values():
        image = node_type["node_config"]["ImageId"]
        line = next(line for line in text.splitlines() if image in line)
        assert "CHANGE-ME" in line, f"placeholder {image} not marked"


def test_the_guides_excerpt_is_what_cluster_yaml_says(config: dict[str, Any]) -> None:
    """docs/guide.md quotes cluster.yaml's token settings in a yaml block that is not a capture config."""
    guide = (REPO / "docs" / "guide.md").read_text(encoding="utf-8")
    excerpts = [
        yaml.safe_load(block)
        for block in re.findall(r"```yaml\n(.*?)```", guide, flags=re.DOTALL)
        if "head_start_ray_commands" in block
    ]
    assert excerpts, "the guide no longer quotes cluster.yaml"
    for excerpt in excerpts:
        for key, value in excerpt.items():
            if isinstance(value, dict):
                assert value.items() <= config[key].items(), key
            else:
                assert value == config[key], key
