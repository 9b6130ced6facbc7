"""How much the Z' figures move from one injection to the next: the study repeated with other Z' events.

    python benchmarks/zprime_injections.py --model models/hybrid_ensemble --seeds 1-20

Runs `mtt.stages.evaluate.injection.study` on the pipeline's test split once per `evaluate.seed` (which Z' events
are injected; the SM events, the templates and the model stay the same) and prints, per estimator, the mean
and standard deviation of the fitted peak position, the Gaussian yield over the injected number and the
known-shape yield over it. Writes `zprime_injections.csv` (one row per seed and estimator) to --out.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from mtt.core.artifact import load_model_dir
from mtt.core.dataset import ID_COLUMNS, OBJECT_COLUMNS, SPLITS, TARGET, open_split, read_metadata, split_path
from mtt.stages.evaluate.estimators import PROVIDED
from mtt.stages.evaluate.injection import study, zprime_mass
from mtt.tools.params import load_params

FIGURES = ("position", "position_shift", "yield_ratio", "template_yield_ratio", "signal_median")


def read(folder: Path, split: str, columns: list[str]) -> pd.DataFrame:
    """One prepared split's columns."""
    return open_split(split_path(folder, split)).read(columns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--zprime", default="data/prepared_zprime")
    parser.add_argument("--model", default="models/default", help="a model folder: models/<config>")
    parser.add_argument("--seeds", default="1-20", help="first-last")
    parser.add_argument("--out", default="benchmarks/.work/zprime_injections")
    args = parser.parse_args()
    params = load_params(args.params, "evaluate")
    artifact = load_model_dir(args.model)
    columns = list(dict.fromkeys([*artifact.features, *OBJECT_COLUMNS, TARGET, *ID_COLUMNS]))
    prepared, zprime_dir = Path(args.prepared), Path(args.zprime)
    test, val = read(prepared, "test", columns), read(prepared, "val", columns)
    train = read(prepared, "train", [*OBJECT_COLUMNS, TARGET])
    zprime = pd.concat([read(zprime_dir, s, columns) for s in SPLITS], ignore_index=True)
    mass = zprime_mass(read_metadata(split_path(zprime_dir, "test")), str(zprime_dir))
    first, last = (int(v) for v in args.seeds.split("-"))
    rows = []
    for seed in range(first, last + 1):
        result = study(test, zprime, val, train, mass, artifact, params.model_copy(update={"seed": seed}),
                       PROVIDED["mdn"])  # the mixture's estimators where the head has one
        rows += [{"seed": seed, "estimator": name, **{k: row[k] for k in FIGURES if k in row}}
                 for name, row in result.figures.items() if isinstance(row, dict)]
    table = pd.DataFrame(rows)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    table.to_csv(Path(args.out) / "zprime_injections.csv", index=False)
    summary = table.groupby("estimator")[list(FIGURES[:4])].agg(["mean", "std"])
    print(f"{last - first + 1} injections of {result.figures['n_signal']} Z' events ({mass:.0f} GeV) into "
          f"{result.figures['n_sm']} SM test events, model {args.model}:")
    print(summary.round(3).to_string())


if __name__ == "__main__":
    main()
