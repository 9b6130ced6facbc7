"""The compare stage: the study's configurations side by side, from their train and evaluate outputs.

It reads `<study>/<config>/{train.json, history.csv, eval/}` for every configuration of study.configs, checks
that all were evaluated on the same test events, and writes the comparison folder (comparison.md and .json, the
overlay figures) and the headline metrics; then it gathers the configurations' MLflow runs under a parent run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from mtt.core.errors import MttError
from mtt.core.io import atomic_dir, check_output_dir, check_output_file, write_json
from mtt.core.metric_names import is_model_independent_plot
from mtt.stages.compare import figures
from mtt.stages.compare.params import StudyParams
from mtt.stages.compare.table import Outputs, headline, markdown, rounded, rows
from mtt.stages.compare.tracking import log_study


class CompareError(MttError):
    """The configurations' outputs cannot be compared: one is missing, or they were measured on other events."""


def _read_json(path: Path, config: str) -> dict[str, Any]:
    if not path.is_file():
        raise CompareError(f"{path}: missing; configuration {config!r} has not been trained and evaluated "
                           f"(`dvc repro evaluate@{config}`)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CompareError(f"{path}: not JSON ({exc.msg} at line {exc.lineno}); rerun evaluate@{config}") from None


def read_outputs(study: Path, params: StudyParams) -> list[Outputs]:
    """Every configuration's evaluate figures and train headline, in the order of study.configs."""
    return [Outputs(config, _read_json(study / config / "eval" / "metrics.json", config),
                    _read_json(study / config / "train.json", config)) for config in params.configs]


def check_same_events(outputs: list[Outputs], reference: str) -> None:
    """Every configuration was evaluated on the same test events: the same count, and the same figures of the
    reference estimator (which no model changes)."""
    first = outputs[0]
    for other in outputs[1:]:
        for key, what in (("n_events", "test events"), (reference, f"{reference} figures")):
            if first.figures.get(key) != other.figures.get(key):
                raise CompareError(f"configurations {first.config!r} and {other.config!r} were evaluated on different "
                                   f"events ({what} differ): rerun `dvc repro` so that all read the same prepared data")


def read_tables(study: Path, configs: list[str], name: str) -> dict[str, pd.DataFrame]:
    """One of evaluate's CSV tables per configuration (those that have it: unfolded.csv needs unfold: true)."""
    return {config: pd.read_csv(study / config / "eval" / name) for config in configs
            if (study / config / "eval" / name).is_file()}


def draw(study: Path, folder: Path, params: StudyParams) -> None:
    """The overlay figures: spectra, bias and resolution per bin, unfolded spectra, val RMSE per epoch."""
    configs = list(params.configs)
    estimators = [e for e in params.estimators if e != "model_unfolded"]
    figures.spectra(read_tables(study, configs, "spectrum.csv"), estimators, params.reference,
                    folder / "spectra.png")
    figures.bias_resolution(read_tables(study, configs, "per_bin.csv"), estimators, params.reference,
                            folder / "bias_resolution.png")
    unfolded = read_tables(study, configs, "unfolded.csv")
    if unfolded:
        figures.unfolded(unfolded, folder / "unfolded.png")
    histories = {c: pd.read_csv(study / c / "history.csv") for c in configs if (study / c / "history.csv").is_file()}
    figures.loss_curves(histories, folder / "loss_curves.png")


def run_compare(params: StudyParams, study: str | Path, out: str | Path, headline_path: str | Path,
                overwrite: bool = False, split: str = "test") -> list[dict[str, Any]]:
    """Compare the configurations; write the table, figures and headline; gather the MLflow runs; the rows."""
    study, out = Path(study), Path(out)
    check_output_dir(out, "compare", [study], overwrite)
    check_output_file(headline_path, [study, out])
    outputs = read_outputs(study, params)
    check_same_events(outputs, params.reference)
    table = rows(outputs, params)
    top = headline(table, params)
    note = markdown(table, params, int(outputs[0].figures.get("n_events", 0)), split)
    with atomic_dir(out, "compare") as tmp:
        (tmp / "comparison.md").write_text(note)
        (tmp / "comparison.json").write_text(json.dumps(rounded(table), indent=1) + "\n")
        draw(study, tmp, params)
    write_json(headline_path, top)
    plots = sorted(p for p in (study / outputs[0].config / "eval" / "plots").glob("*.png")
                   if is_model_independent_plot(p.name))
    log_study({o.config: str(o.train.get("run_id", "")) for o in outputs}, top, outputs[0].figures, split,
              note, out, plots)
    return table


def main(params: StudyParams, study: str, out: str, headline_path: str, overwrite: bool = False,
         split: str = "test") -> None:
    """Stage entry: compare (the configurations evaluated on `split`), print the table."""
    table = run_compare(params, study, out, headline_path, overwrite, split)
    print((Path(out) / "comparison.md").read_text(), end="")
    print(f"compare: {len(table)} rows of {len(params.configs)} configurations in {out}")
