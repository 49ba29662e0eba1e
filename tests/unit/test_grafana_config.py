"""drill.yaml's grafana: section: validated before a drill touches anything, beside the targets."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from drillbit.core.errors import ConfigError
from drillbit.runner import grafana_config
from drillbit.targets import load_targets


def _config(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "drill.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_grafana_section_is_read_beside_the_targets(tmp_path: Path) -> None:
    path = _config(tmp_path, {"targets": {"box": {"kind": "sandbox"}},
                              "grafana": {"url": "http://127.0.0.1:3000", "dashboard_uid": "trading"}})  # fmt: skip
    cfg = grafana_config(path)
    assert cfg is not None and cfg.url == "http://127.0.0.1:3000" and cfg.token_env == "DRILL_GRAFANA_TOKEN"
    assert list(load_targets(path)[1]) == ["box"]


def test_no_grafana_section_is_no_annotation(tmp_path: Path) -> None:
    assert grafana_config(_config(tmp_path, {"targets": {}})) is None


def test_a_wrong_grafana_field_is_one_config_error_naming_the_file_and_field(tmp_path: Path) -> None:
    path = _config(tmp_path, {"grafana": {"url": "http://127.0.0.1:3000", "token": "glsa_x"}})
    with pytest.raises(ConfigError) as err:
        grafana_config(path)
    assert str(err.value).startswith(f"{path}: grafana.token") and "glsa_x" not in str(err.value)


def test_an_unknown_top_level_key_is_still_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="grafana:"):
        load_targets(_config(tmp_path, {"targets": {}, "grafanna": {}}))
