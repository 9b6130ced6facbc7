"""Benchmark the train stage's fit loop (with all per-epoch MLflow logging) against plain `model.fit`.

    python benchmarks/bench_train.py [--epochs 10] [--batch-size 256]
    python benchmarks/bench_train.py --architecture set [--max-jets 10] [--epochs 3] [--repeat 1]
    python benchmarks/bench_train.py -S head=mdn -S ensemble=5 -S "augment=[phi_rotation,z_reflection]"

Same data (the prepared splits in benchmarks/.work), same model, optimizer and batch size. Prints samples/s
of plain fit and of the stage three ways (numpy input; numpy + per-epoch resume checkpoints, as `dvc repro`
runs it; tf.data streamed from Parquet + checkpoints), their ratios (target >= 0.9), the seconds per epoch,
and the fraction of the CPU's peak FP32 rate the stage reaches
(training ~ 6 FLOPs per parameter per sample; peak = cores x clock x 32 FP32 FLOPs/cycle for AVX2 FMA;
for the set architecture, whose Dense layers run once per object, this undercounts).

`--architecture set` trains the transformer over objects on the `objects` feature set (stage with numpy
input only). When the prepared splits lack that set (written by a newer prepare), it is built here from the
same events: l+, l- and the two b jets (jet0, jet1) from their four-momenta, further jets up to each
event's n_jets as random soft jets (timing only), the other slots padded; with their own train reference.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_validate import SOURCE_EVENTS, source_rows  # noqa: E402  (the same prepared events)

#: cached inputs; MTT_BENCH_WORK moves them (the smoke tests keep theirs apart)
WORK = Path(os.environ.get("MTT_BENCH_WORK", Path(__file__).resolve().parent / ".work"))


def peak_flops() -> float:
    """cores x clock (Hz) x 32: FP32 FMA on two 256-bit units."""
    mhz = [float(line.split(":")[1]) for line in Path("/proc/cpuinfo").read_text().splitlines()
           if line.startswith("cpu MHz")]
    return len(os.sched_getaffinity(0)) * (max(mhz) if mhz else 2000.0) * 1e6 * 32


def objects_frame(frame: pd.DataFrame, max_jets: int, seed: int = 0) -> pd.DataFrame:
    """The `objects` columns missing from a prepared split, from its four objects (see the module docstring)."""
    from mtt.core.dataset import object_columns

    rng = np.random.default_rng(seed)
    n, n_jets = len(frame), frame["n_jets"].to_numpy()
    out: dict[str, np.ndarray] = {}
    for slot, source in (("lplus", "lplus"), ("lminus", "lminus"), ("jet0", "b1"), ("jet1", "b2")):
        pt, eta, phi, e = (frame[f"{source}_{k}"].to_numpy(np.float64) for k in ("pt", "eta", "phi", "e"))
        out |= {f"{slot}_px": pt * np.cos(phi), f"{slot}_py": pt * np.sin(phi), f"{slot}_pz": pt * np.sinh(eta),
                f"{slot}_loge": np.log(e)}
    channel = frame["channel"].to_numpy()
    first_muon = rng.random(n) < 0.5  # emu: which lepton is the muon is not stored in the old splits
    out |= {"lplus_muon": (channel == "mumu") | ((channel == "emu") & first_muon),
            "lminus_muon": (channel == "mumu") | ((channel == "emu") & ~first_muon),
            "jet0_btag": np.ones(n), "jet1_btag": frame["n_bjets"].to_numpy() >= 2, "jet0_mask": np.ones(n),
            "jet1_mask": np.ones(n)}
    for i in range(2, max_jets):
        real = i < n_jets
        pt, eta, phi = 30 + rng.exponential(25, n), rng.uniform(-2.4, 2.4, n), rng.uniform(-np.pi, np.pi, n)
        out |= {f"jet{i}_px": pt * np.cos(phi) * real, f"jet{i}_py": pt * np.sin(phi) * real,
                f"jet{i}_pz": pt * np.sinh(eta) * real, f"jet{i}_loge": np.log(pt * np.cosh(eta)) * real,
                f"jet{i}_btag": np.zeros(n), f"jet{i}_mask": real.astype(float)}
    return pd.DataFrame({c: np.asarray(out[c], np.float32) for c in object_columns(max_jets) if c in out})


def objects_prepared(prepared: Path, max_jets: int) -> tuple[Path, Path]:
    """(prepared folder with the `objects` set, its train reference): prepare's own when it wrote the set."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mtt.core.dataset import METADATA_KEY, SPLITS, object_columns, open_split, read_metadata, split_path, unit
    from mtt.stages.validate.params import ValidateParams
    from mtt.stages.validate.reference import build_reference

    if "objects" in read_metadata(split_path(prepared, "train")).get("feature_sets", {}):
        return prepared, WORK / "validate_reference"
    out, reference = WORK / f"objects_prepared_{max_jets}", WORK / f"objects_reference_{max_jets}"
    out.mkdir(exist_ok=True)
    for split in SPLITS:
        if split_path(out, split).exists():
            continue
        frame = pd.read_parquet(split_path(prepared, split))
        objects = objects_frame(frame, max_jets, seed=SPLITS.index(split))
        metadata = read_metadata(split_path(prepared, split))
        metadata["feature_sets"]["objects"] = object_columns(max_jets)
        metadata["features"] = list(dict.fromkeys([*metadata["features"], *object_columns(max_jets)]))
        metadata["units"] |= {c: unit(c) for c in objects.columns}
        table = pa.Table.from_pandas(pd.concat([frame, objects], axis=1), preserve_index=False)
        pq.write_table(table.replace_schema_metadata({METADATA_KEY: json.dumps(metadata).encode()}),
                       split_path(out, split))
    if not reference.is_dir():
        train = open_split(split_path(out, "train"))
        build_reference(train.read(), train.metadata["features"], ValidateParams(), reference)
    return out, reference


def stage_rates(variants: dict[str, tuple[Any, bool]], prepared: Path, reference: Path, repeat: int) -> dict:
    """Best samples/s of `run_train` per variant (a fresh MLflow store and network each run)."""
    from mtt.stages.train.stage import TrainPaths, run_train

    rates: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
        here = Path.cwd()
        os.chdir(tmp)
        try:
            for _ in range(repeat):
                for name, (variant, checkpoints) in variants.items():
                    paths = TrainPaths(prepared=prepared, reference=reference, model=Path(tmp) / "models",
                                       checkpoints=Path(tmp) / "checkpoints" if checkpoints else None)
                    summary = run_train(variant, paths)
                    rates[name] = max(rates.get(name, 0.0), summary["train_samples_per_s"])
        finally:
            os.chdir(here)
    return rates


def plain_fit(params: Any, prepared: Path, reference: Path, repeat: int) -> tuple[float, int, int, int]:
    """(best samples/s, train events, features, parameters) of one cold `model.fit` on the same network."""
    import keras

    from mtt.core.dataset import open_split, split_path
    from mtt.core.model import TargetTransform
    from mtt.core.preprocessing import load_reference_scaler
    from mtt.stages.train.setup import compiled_network

    split = open_split(split_path(prepared, "train"), params.feature_set)
    features = split.features(params.feature_set, params.max_jets)
    x, y = split.arrays(features)
    scaler = load_reference_scaler(reference, params.scaler, params.log_features, features)
    target = TargetTransform.fit(params.target_transform, y).forward(y).astype(np.float32)
    plain = 0.0
    for _ in range(repeat):
        keras.utils.set_random_seed(params.seed)
        network, _ = compiled_network(params, features, scaler, int(np.ceil(len(x) / params.batch_size)))
        # a fresh network and one cold fit call, as in the stage: both include Keras' graph tracing
        start = time.perf_counter()
        network.fit(x, target, batch_size=params.batch_size, epochs=params.epochs, verbose=0)
        plain = max(plain, len(x) * params.epochs / (time.perf_counter() - start))
    return plain, len(x), len(features), network.count_params()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs of each (process warm-up)")
    parser.add_argument("--architecture", choices=("dense", "set"), default="dense")
    parser.add_argument("--max-jets", type=int, default=10, help="jet slots of the set architecture")
    parser.add_argument("-S", "--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a train param for stage and plain fit alike, e.g. ensemble=5")
    parser.add_argument("--source-events", type=int, default=SOURCE_EVENTS, help="simulated events to prepare")
    args = parser.parse_args()
    source_rows(args.source_events)  # makes benchmarks/.work/validate_prepared if needed
    suffix = "" if args.source_events == SOURCE_EVENTS else f"_{args.source_events}"
    prepared, reference = WORK / f"validate_prepared{suffix}", WORK / f"validate_reference{suffix}"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from mtt.core.dataset import open_split, split_path
    from mtt.core.params import parse_overrides
    from mtt.stages.train.params import TrainParams
    from mtt.stages.validate.params import ValidateParams
    from mtt.stages.validate.reference import build_reference

    if not reference.is_dir():  # the validate stage's output: the scalers fitted on train
        train = open_split(split_path(prepared, "train"))
        build_reference(train.read(), train.metadata["features"], ValidateParams(), reference)
    params = TrainParams.model_validate({**parse_overrides(args.set, "train"), "epochs": args.epochs,
                                         "batch_size": args.batch_size, "input": "memory"})
    variants = {"stage, numpy input": (params, False), "stage + checkpoints": (params, True),
                "stage, streamed + ckpts": (params.model_copy(update={"input": "stream"}), True)}
    if args.architecture == "set":
        prepared, reference = objects_prepared(prepared, args.max_jets)
        params = params.model_copy(update={"feature_set": "objects", "architecture": "set",
                                           "max_jets": args.max_jets})
        variants = {"stage, numpy input": (params, False)}
    rates = stage_rates(variants, prepared, reference, args.repeat)
    plain, n_train, n_features, n_parameters = plain_fit(params, prepared, reference, args.repeat)

    flops = 6 * n_parameters * rates["stage, numpy input"]
    print(f"train benchmark: {args.architecture} architecture, {n_train} train events, {n_features} features, "
          f"{n_parameters} parameters, batch {params.batch_size}, {args.epochs} epochs {' '.join(args.set)}")
    print(f"plain model.fit            {plain:10.0f} samples/s   {n_train / plain:7.2f} s/epoch")
    for name, rate in rates.items():
        print(f"{name:27s}{rate:10.0f} samples/s   {n_train / rate:7.2f} s/epoch   ratio {rate / plain:.2f}")
    print(f"stage FP32 rate            {flops / 1e9:10.2f} GFLOP/s = {flops / peak_flops():.1%} of peak "
          f"({peak_flops() / 1e9:.0f} GFLOP/s)")


if __name__ == "__main__":
    main()
