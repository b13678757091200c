"""Generated references are current: regenerate with `python -m xtrader.docs <name>`."""

from __future__ import annotations

from pathlib import Path

import pytest

from xtrader import docs
from xtrader.config import ENV_OVERRIDES, MODELS

ROOT = Path(__file__).resolve().parents[2]


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


def test_check_fails_on_a_stale_file_and_writing_fixes_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "config.md"
    target.write_text("old\n", encoding="utf-8")
    assert docs.main(["config", "--check", "--output", str(target)]) == 1
    assert "is stale" in capsys.readouterr().err
    assert docs.main(["config", "--output", str(target)]) == 0
    assert docs.main(["config", "--check", "--output", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == docs.config_markdown()
