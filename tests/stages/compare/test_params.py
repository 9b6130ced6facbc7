"""The study section: names that become folders and DVC keys, a recommended configuration that exists, presets
that exist, and `--config` applying its preset."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mtt.core.errors import ParamsError
from mtt.stages.compare.params import StudyParams
from mtt.tools.params import load_whole

REPO = Path(__file__).resolve().parents[3]


def test_a_name_that_cannot_be_a_folder_is_refused() -> None:
    with pytest.raises(ValueError, match="configuration names must match.*'a/b'"):
        StudyParams(configs={"a/b": "none"}, recommended="a/b")


def test_the_recommended_configuration_must_be_run() -> None:
    with pytest.raises(ValueError, match="recommended: 'hybrid' is not in configs"):
        StudyParams(configs={"default": "none"}, recommended="hybrid")


def _params(tmp_path: Path, configs: dict[str, str]) -> Path:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["study"].update(configs=configs, recommended=next(iter(configs)))
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_an_unknown_preset_is_named(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match=r"study.configs: fancy: unknown preset 'hybrid_mnd'"):
        load_whole(_params(tmp_path, {"fancy": "hybrid_mnd"}), None, {})


def test_config_applies_its_preset_and_explicit_changes_win(tmp_path: Path) -> None:
    path = _params(tmp_path, {"seed": "seed_baseline", "default": "none"})
    assert load_whole(path, "train", {}, "seed").train.feature_set == "seed"
    assert load_whole(path, "train", {"feature_set": "lowlevel"}, "seed").train.feature_set == "lowlevel"
    assert load_whole(path, "train", {}, "default").train.preset == "none"


def test_an_unknown_config_is_named_with_those_there_are(tmp_path: Path) -> None:
    path = _params(tmp_path, {"seed": "seed_baseline"})
    with pytest.raises(ParamsError, match=r"--config: no configuration 'sed' in study.configs \(there: seed\)"):
        load_whole(path, "evaluate", {}, "sed")
