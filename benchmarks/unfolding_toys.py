"""Do the unfolded errors cover? Toy ensembles with a known answer, old and new settings side by side.

    python benchmarks/unfolding_toys.py --toys 100
    python benchmarks/unfolding_toys.py --timing OLD/src/mtt/core/unfolding.py  # evaluate's unfolding, old vs new
    python benchmarks/unfolding_toys.py --model models/flow --events 5000   # a trained model's own response

With `--model`, the toys are drawn (with replacement) from the model's (point estimate, true m_tt) pairs on the
pipeline's val and test splits (`--prepared`, the estimate as evaluate computes it: a flow's median of
`evaluate.flow_samples` seeded draws): the response and the data come from the same population, whose true
spectrum per bin is the expectation.

Each toy: a response sample and an independent data sample (Poisson-distributed size around --events) of a
falling spectrum above the tt threshold (m = 345 GeV + an exponential of 180 GeV: mean 525 GeV), smeared by
15% Gaussian; the project's default binning (24 bins of 50 GeV from 300 to 1500 GeV, merged to >= 20 events
per bin) and stopping (KS distance 1e-3, at most 100 iterations). Two ensembles: the data spectrum the same as
the response's, and harder (reweighted by m / 400 GeV, i.e. a mixture of the exponential and a Gamma(2)).
Against the exact expected counts per true bin it prints, per setting, the mean chi2/ndf with the quoted
errors per bin and with the full covariance, the pull width per bin (its smallest and largest over the
bins), the largest mean pull, the mean relative error of 350-1000 GeV and the iterations. Settings: `before`
is the old one (the response sample's truth histogram as prior, pyunfold's Adye errors: data and response
statistics with the prior held fixed); the others use the replica errors (Poisson replicas of the data and of
the response sample, the prior rebuilt from each) with each prior. Every toy is unfolded with every setting.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import stats

from mtt.core.unfolding import PRIORS, Response, merged_edges, unfold

THRESHOLD = 345.0  # GeV
SLOPE = 180.0  # GeV: the exponential's scale above the threshold
SMEARING = 0.15
EDGES = np.linspace(300.0, 1500.0, 25)
HARDER_PIVOT = 400.0  # GeV: the harder spectrum is the falling one times m / HARDER_PIVOT


def sample(rng: np.random.Generator, n: int, harder: bool) -> tuple[np.ndarray, np.ndarray]:
    """(reco, true) of n events; the harder pdf (THRESHOLD + x) exp(-x / SLOPE) is a mixture of the exponential
    (weight THRESHOLD) and a Gamma(2, SLOPE) (weight SLOPE)."""
    x = rng.exponential(SLOPE, n)
    if harder:
        gamma = rng.random(n) >= THRESHOLD / (THRESHOLD + SLOPE)
        x[gamma] = rng.gamma(2.0, SLOPE, int(gamma.sum()))
    true = THRESHOLD + x
    return true * (1 + SMEARING * rng.standard_normal(n)), true


def expected(edges: np.ndarray, n: float, harder: bool) -> np.ndarray:
    """The exact expected true counts per bin of a sample of mean size n."""
    x = np.clip(edges - THRESHOLD, 0.0, None)
    cdf = stats.expon.cdf(x, scale=SLOPE)
    if harder:
        cdf = (THRESHOLD * cdf + SLOPE * stats.gamma.cdf(x, 2.0, scale=SLOPE)) / (THRESHOLD + SLOPE)
    return n * np.diff(cdf)


Pool = tuple[np.ndarray, np.ndarray]  # (reco, true) pairs of a trained model


def model_pool(model_dir: str, prepared: str) -> Pool:
    """(point estimate, true m_tt) of a saved model on the val and test splits, as evaluate computes them."""
    import pandas as pd

    from mtt.core.artifact import load_model_dir
    from mtt.core.dataset import TARGET, open_split, split_path
    from mtt.core.inference import head_output
    from mtt.stages.evaluate.params import EvaluateParams

    artifact, params = load_model_dir(model_dir), EvaluateParams()
    frame = pd.concat([open_split(split_path(prepared, s)).read([*artifact.features, TARGET]) for s in ("val", "test")])
    output = head_output(artifact.model, frame[artifact.features].to_numpy(np.float32), artifact.meta,
                         params.flow_samples, params.seed)
    return output.point, frame[TARGET].to_numpy(np.float64)


def draw(rng: np.random.Generator, n: int, harder: bool, pool: Pool | None) -> tuple[np.ndarray, np.ndarray]:
    """n (reco, true) events: from the pool when given, else the smeared falling spectrum."""
    if pool is None:
        return sample(rng, n, harder)
    rows = rng.integers(0, len(pool[1]), n)
    return pool[0][rows], pool[1][rows]


def toy_edges(events: int, seed: int) -> np.ndarray:
    """The default edges merged to >= 20 events of one response-sized sample (the same for every toy)."""
    return merged_edges(EDGES, sample(np.random.default_rng(seed), events, False)[1], 20)


#: evaluate's defaults: stop at a KS distance of 1e-3, at most 100 iterations
TS_STOPPING, MAX_ITER = 1e-3, 100


def ensemble(toys: int, events: int, harder: bool, seed: int, replicas: int, priors: tuple[str, ...] = PRIORS,
             pool: Pool | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Per setting: the unfolded counts, quoted errors, covariance chi2/ndf and iterations of every toy, and the
    expectation."""
    rng = np.random.default_rng(seed)
    if pool is None:
        edges = toy_edges(events, seed + 1)
        mean = expected(edges, events, harder)
    else:
        edges = merged_edges(EDGES, draw(np.random.default_rng(seed + 1), events, False, pool)[1], 20)
        mean = events * np.histogram(pool[1], edges)[0] / len(pool[1])
    rows: dict[str, dict[str, list]] = {}
    for toy in range(toys):
        response = Response.build(*draw(rng, events, False, pool), edges)
        observed = np.histogram(draw(rng, int(rng.poisson(events)), harder, pool)[0], edges)[0]
        for prior in priors:
            result = unfold(observed, response, TS_STOPPING, MAX_ITER, replicas, seed=toy, prior=prior)
            settings = {prior: (result.errors, result.chi2_ndf_cov(mean))}
            if prior == "truth":
                settings["before"] = (result.adye_err, float("nan"))
            for name, (errors, chi2_cov) in settings.items():
                row = rows.setdefault(name, {"counts": [], "errors": [], "chi2_cov": [], "iterations": []})
                row["counts"].append(result.counts)
                row["errors"].append(errors)
                row["chi2_cov"].append(chi2_cov)
                row["iterations"].append(result.iterations)
    return {name: {**{k: np.asarray(v) for k, v in row.items()}, "expected": mean, "edges": edges}
            for name, row in rows.items()}


def summary(row: dict[str, np.ndarray]) -> dict[str, float]:
    """The coverage figures of one setting over its toys."""
    pulls = (row["counts"] - row["expected"]) / row["errors"]
    width = pulls.std(axis=0, ddof=1)
    centres = (row["edges"][:-1] + row["edges"][1:]) / 2
    window = (centres > 350) & (centres < 1000)
    return {"chi2_ndf": float(np.mean(pulls**2)), "chi2_ndf_cov": float(np.mean(row["chi2_cov"])),
            "width_min": float(width.min()), "width_max": float(width.max()), "width_mean": float(width.mean()),
            "max_mean_pull": float(np.max(np.abs(pulls.mean(axis=0)))),
            "relative_error": float(np.mean(row["errors"][:, window] / row["expected"][window])),
            "iterations_min": int(row["iterations"].min()), "iterations_max": int(row["iterations"].max())}


def table(results: dict[str, dict[str, dict[str, np.ndarray]]]) -> str:
    """A Markdown table: one row per spectrum and setting."""
    lines = ["| data spectrum | setting | chi2/ndf (errors) | chi2/ndf (covariance) | pull width per bin "
             "(min-max, mean) | max mean pull | rel. error 350-1000 GeV | iterations |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for spectrum, rows in results.items():
        for name in ["before", *[p for p in PRIORS if p in rows]]:
            s = summary(rows[name])
            cov = "-" if np.isnan(s["chi2_ndf_cov"]) else f"{s['chi2_ndf_cov']:.2f}"
            lines.append(f"| {spectrum} | {name} | {s['chi2_ndf']:.2f} | {cov} | {s['width_min']:.2f}-"
                         f"{s['width_max']:.2f} ({s['width_mean']:.2f}) | {s['max_mean_pull']:.2f} | "
                         f"{s['relative_error']:.2%} | {s['iterations_min']}-{s['iterations_max']} |")
    return "\n".join(lines)


def evaluate_timing(old_path: str, events: int = 5151, seed: int = 1) -> str:
    """Wall clock of evaluate's unfolding on a toy of the default pipeline's size (two methods of 12% and 25%
    resolution, response and data of `events` each, common stopping point): an older mtt/core/unfolding.py (its
    defaults: 100 data replicas) against this one (its defaults: the evaluate params)."""
    import importlib.util
    import sys

    from mtt.core import unfolding
    from mtt.stages.evaluate.params import EvaluateParams

    spec = importlib.util.spec_from_file_location("old_unfolding", old_path)
    old = importlib.util.module_from_spec(spec)
    sys.modules["old_unfolding"] = old  # its dataclasses look their module up
    spec.loader.exec_module(old)
    rng = np.random.default_rng(seed)
    params = EvaluateParams()

    def toy(resolution: float) -> tuple[np.ndarray, np.ndarray]:
        true = THRESHOLD + rng.gamma(2.0, 90.0, events)
        return true * rng.normal(1, resolution, events), true

    pairs = [(toy(resolution), toy(resolution)) for resolution in (0.12, 0.25)]
    edges = merged_edges(params.edges(), pairs[0][0][1], params.unfold_min_events)
    lines = []
    for name, module, kwargs, replicas in (("old", old, {}, 100),
                                           ("new", unfolding, {"prior": params.unfold_prior}, params.unfold_replicas)):
        start = time.perf_counter()
        inputs = [(np.histogram(test[0], edges)[0], module.Response.build(*val, edges)) for val, test in pairs]
        iterations, _ = module.common_iterations(inputs, params.unfold_ts_stopping, params.unfold_max_iter,
                                                 *kwargs.values())
        for observed, response in inputs:
            module.unfold(observed, response, replicas=replicas, seed=params.seed, iterations=iterations, **kwargs)
        lines.append(f"{name}: {time.perf_counter() - start:.2f} s ({len(edges) - 1} bins, {iterations} iterations, "
                     f"{replicas} replicas)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--toys", type=int, default=100, help="toys per data spectrum (>= 20)")
    parser.add_argument("--events", type=int, default=50_000, help="events of the response and (mean) data sample")
    parser.add_argument("--replicas", type=int, default=1000, help="replicas of the data and of the response each")
    parser.add_argument("--seed", type=int, default=25)
    parser.add_argument("--timing", metavar="OLD_UNFOLDING_PY", help="time evaluate's unfolding, old against new")
    parser.add_argument("--model", help="draw the toys from this saved model's response (e.g. models/flow)")
    parser.add_argument("--prepared", default="data/prepared", help="the prepared splits --model is read on")
    args = parser.parse_args()
    if args.timing:
        print(evaluate_timing(args.timing))
        return
    start = time.perf_counter()
    pool = model_pool(args.model, args.prepared) if args.model else None
    spectra = ("same",) if pool is not None else ("same", "harder")
    results = {spectrum: ensemble(args.toys, args.events, spectrum == "harder", args.seed + i, args.replicas,
                                  pool=pool) for i, spectrum in enumerate(spectra)}
    print(table(results))
    print(f"\n{args.toys} toys per spectrum, {args.events:,} events, {args.replicas} replicas; targets: chi2/ndf "
          f"0.8-1.25, pull width 0.85-1.15; {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
