"""Benchmark the evaluate stage's ellipse method (`mtt.core.reco.ellipse.reconstruct_mtt`): vectorised vs a
per-event loop.

    python benchmarks/bench_evaluate.py [--events 50000] [--loop-events 500] [--repeat 3]
    python benchmarks/bench_evaluate.py --old OLD/src/mtt/core/reco/ellipse.py  # + an older solver, same run

The numba-compiled variant that was measured and not merged (commit c823177 in main's history, reverted by
832b7f3; benchmarks/RESULTS.md): its ellipse.py needs its kernels.py beside it, so time it in a checkout of c823177.

Input: `--events` parton-level Pythia events, simulated once into benchmarks/.work/ (reused by later runs).
Their generator-level b, bbar, l+, l- are made detector-like by Gaussian smearing of the four-momenta
(b quarks 15%, leptons 2%), MET = true (nu + nubar) pT minus the pT the smearing added, plus 15 GeV per
component; b1 / b2 are the two b's ordered by smeared pT, so the method does not know which one comes from
the top. Events whose generator record lacks a b quark are dropped.

Prints, in the same run: events/s of `reconstruct_mtt` on the whole array (one process, best of --repeat) and
of a Python loop calling it event by event (n = 1 slices) on the first --loop-events events; the
exact-solution fraction, fallback and no-solution fractions and the m_tt resolution on the smeared inputs;
and, for reference, the exact-solution fractions on the unsmeared generator level (true pairing) with each
event's own masses and with the nominal m_W = 80.4, m_t = 172.5; and the first call's time in this process (what
a compiled solver would pay to load or compile). Targets: >= 20k events/s on 2 cores (met), >= 200k (#30).
With `--old` (a copy of an earlier ellipse.py, e.g. `git show REV:src/mtt/core/reco/ellipse.py > old.py`) that
solver is timed too, interleaved with the current one, and the largest relative m_tt difference and whether
every answer (m_tt, exact, pairing, n_solutions, met_residual, degenerate) is bit-identical are printed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import time
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot
import vector

from mtt.core.reco.ellipse import reconstruct_mtt, solve_neutrinos
from mtt.stages.simulate.params import SimulateParams
from mtt.stages.simulate.stage import MANIFEST, run_simulation

#: cached inputs; MTT_BENCH_WORK moves them (the smoke tests keep theirs apart)
WORK = Path(os.environ.get("MTT_BENCH_WORK", Path(__file__).resolve().parent / ".work"))
GEN = ("B", "Bbar", "LepPlus", "LepMinus", "Nu", "Antinu")


def make_input(n_events: int) -> Path:
    """Simulated files (reused when a previous run made the same ones)."""
    folder = WORK / f"ellipse_{n_events}" / "raw"
    manifest = folder / MANIFEST
    if not (manifest.exists() and json.loads(manifest.read_text())["n_events"] == n_events):
        run_simulation(SimulateParams(n_events=n_events, events_per_chunk=min(n_events, 25_000), progress=False),
                       folder)
    return folder


def read_truth(folder: Path) -> dict[str, np.ndarray]:
    """Generator-level (n, 4) px, py, pz, E in float64 and the true m_tt, for events with both b quarks."""
    branches = [f"Gen{name}_{k}" for name in GEN for k in ("pt", "eta", "phi", "mass")] + ["Gen_mtt"]
    events = uproot.concatenate([f"{f}:Events" for f in sorted(folder.glob("events_*.root"))], branches)
    out = {}
    for name in GEN:
        v = vector.array({k: ak.to_numpy(events[f"Gen{name}_{k}"]).astype(np.float64)
                          for k in ("pt", "eta", "phi", "mass")})
        out[name] = np.column_stack([v.px, v.py, v.pz, v.E])
    out["m_tt"] = ak.to_numpy(events["Gen_mtt"]).astype(np.float64)
    keep = np.isfinite(out["B"]).all(axis=1) & np.isfinite(out["Bbar"]).all(axis=1)
    return {k: v[keep] for k, v in out.items()}


def smear(truth: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """Detector-like inputs: smeared b's and leptons, MET with their pT change and an unclustered term."""
    rng = np.random.default_rng(seed)
    n = len(truth["B"])
    out = {}
    for name, sigma in (("B", 0.15), ("Bbar", 0.15), ("LepPlus", 0.02), ("LepMinus", 0.02)):
        out[name] = truth[name] * np.clip(rng.normal(1.0, sigma, (n, 1)), 0.2, None)
    visible_change = sum(out[k][:, :2] - truth[k][:, :2] for k in ("B", "Bbar", "LepPlus", "LepMinus"))
    out["met"] = truth["Nu"][:, :2] + truth["Antinu"][:, :2] - visible_change + rng.normal(0.0, 15.0, (n, 2))
    first = vector.array({"px": out["B"][:, 0], "py": out["B"][:, 1]}).pt >= \
        vector.array({"px": out["Bbar"][:, 0], "py": out["Bbar"][:, 1]}).pt
    out["b1"] = np.where(first[:, None], out["B"], out["Bbar"])
    out["b2"] = np.where(first[:, None], out["Bbar"], out["B"])
    out["true_pairing"] = np.where(first, 0, 1)
    return out


def mass(p: np.ndarray) -> np.ndarray:
    """Invariant mass of (n, 4) four-vectors."""
    return vector.array({"px": p[:, 0], "py": p[:, 1], "pz": p[:, 2], "E": p[:, 3]}).mass


def generator_rates(truth: dict[str, np.ndarray]) -> tuple[float, float]:
    """Exact-solution fractions on the unsmeared generator level, true pairing: own masses, nominal masses."""
    b, bbar, lplus, lminus, nu, nubar = (truth[k] for k in GEN)
    met = nu[:, :2] + nubar[:, :2]
    own = solve_neutrinos(b, lplus, bbar, lminus, met[:, 0], met[:, 1], m_w=mass(lplus + nu), m_t=mass(b + lplus + nu),
                          m_w_bar=mass(lminus + nubar), m_t_bar=mass(bbar + lminus + nubar))
    nominal = solve_neutrinos(b, lplus, bbar, lminus, met[:, 0], met[:, 1])
    return float(own.exact.mean()), float(nominal.exact.mean())


def load_solver(path: str) -> Any:
    """An ellipse.py from another revision, as a module of its own."""
    spec = importlib.util.spec_from_file_location("old_ellipse", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def identical(a: Any, b: Any) -> bool:
    """Whether two EllipseResults hold the same bits (NaN equal to NaN)."""
    fields = ("m_tt", "exact", "pairing", "n_solutions", "met_residual", "degenerate")
    return all(np.array_equal(getattr(a, f), getattr(b, f), equal_nan=getattr(a, f).dtype.kind == "f")
               for f in fields)


def best_seconds(solvers: dict[str, Any], inputs: tuple[np.ndarray, ...], repeat: int) -> dict[str, float]:
    """Best wall time of each solver's `reconstruct_mtt` on the whole array, runs interleaved."""
    seconds = {name: np.inf for name in solvers}
    for _ in range(repeat):
        for name, solver in solvers.items():
            start = time.perf_counter()
            solver(*inputs)
            seconds[name] = min(seconds[name], time.perf_counter() - start)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--loop-events", type=int, default=500, help="events of the per-event loop")
    parser.add_argument("--repeat", type=int, default=3, help="take the best rate of this many runs")
    parser.add_argument("--seed", type=int, default=1, help="smearing seed")
    parser.add_argument("--old", help="an earlier ellipse.py to time against, in the same run")
    args = parser.parse_args()
    truth = read_truth(make_input(args.events))
    reco = smear(truth, args.seed)
    inputs = (reco["LepPlus"], reco["LepMinus"], reco["b1"], reco["b2"], reco["met"][:, 0], reco["met"][:, 1])
    n = len(inputs[0])

    start = time.perf_counter()
    reconstruct_mtt(*(x[:10] for x in inputs))
    first_call = time.perf_counter() - start
    old = load_solver(args.old).reconstruct_mtt if args.old else None
    seconds = best_seconds({"current": reconstruct_mtt, **({"old": old} if old else {})}, inputs, args.repeat)
    result = reconstruct_mtt(*inputs)
    k = min(args.loop_events, n)
    loop_seconds = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        loop = [reconstruct_mtt(*(x[i:i + 1] for x in inputs)).m_tt[0] for i in range(k)]
        loop_seconds.append(time.perf_counter() - start)
    same = np.allclose(loop, result.m_tt[:k], rtol=1e-9, equal_nan=True)

    found = np.isfinite(result.m_tt)
    rel = (result.m_tt - truth["m_tt"]) / truth["m_tt"]
    own, nominal = generator_rates(truth)
    print(f"ellipse benchmark: {n} smeared Pythia events (b 15%, leptons 2%, MET 15 GeV), 1 process, "
          f"best of {args.repeat}")
    print(f"{'vectorised reconstruct_mtt':>32s}: {n / seconds['current']:10.0f} events/s ({n} events); "
          f"first call in this process {first_call:.2f} s")
    if old:
        theirs = old(*inputs)
        with np.errstate(invalid="ignore"):
            differ = np.nanmax(np.abs(theirs.m_tt / result.m_tt - 1))
        print(f"{'old solver (--old)':>32s}: {n / seconds['old']:10.0f} events/s; current / "
              f"old {seconds['old'] / seconds['current']:.2f}x; largest relative m_tt difference {differ:.1e}; "
              f"every answer bit-identical: {identical(theirs, result)}")
    print(f"{'per-event loop, same function':>32s}: {k / min(loop_seconds):10.0f} events/s ({k} events; "
          f"same m_tt: {same})")
    print(f"{'speed-up':>32s}: {(n / seconds['current']) / (k / min(loop_seconds)):10.1f}x")
    print(f"smeared: exact {result.exact.mean():.3f}, fallback {np.mean(found & ~result.exact):.3f}, "
          f"no solution {np.mean(~found):.3f}; true pairing chosen "
          f"{np.mean(result.pairing[found] == reco['true_pairing'][found]):.3f}; "
          f"median MET mismatch of the fallback {np.median(result.met_residual[found & ~result.exact]):.1f} GeV")
    for label, mask in (("all", found), ("exact", result.exact), ("fallback", found & ~result.exact)):
        q16, q50, q84 = np.percentile(rel[mask], [16, 50, 84])
        print(f"  (m_tt - true) / true, {label:>8s}: median {q50:+.3f}, 68% half-width {(q84 - q16) / 2:.3f}")
    print(f"generator level, true pairing: exact with own masses {own:.4f}, with nominal (80.4, 172.5) {nominal:.4f}")


if __name__ == "__main__":
    main()
