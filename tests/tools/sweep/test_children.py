"""The train and evaluate commands each child runs."""

from __future__ import annotations

from pathlib import Path

from mtt.tools.sweep.children import Child, StagePaths, stage_commands


def test_children_evaluate_with_the_zprime_sample_only_when_given(tmp_path):
    child = Child("n_train=10000", ("n_train=10000",), {"sweep.n_train": 10000}, tmp_path / "n_train=10000")
    paths = StagePaths(params=Path("params.yaml"), prepared=Path("data/prepared"), reference=Path("data/reference"))
    assert "--zprime" not in stage_commands(child, paths)["evaluate"]
    with_zprime = StagePaths(**{**paths.__dict__, "zprime": Path("data/prepared_zprime")})
    evaluate = stage_commands(child, with_zprime)["evaluate"]
    assert evaluate[evaluate.index("--zprime") + 1] == "data/prepared_zprime"
    assert "--zprime" not in stage_commands(child, with_zprime)["train"]
