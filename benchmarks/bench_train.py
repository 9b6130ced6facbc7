"""Benchmark the train stage's fit loop (with all per-epoch MLflow logging) against plain `model.fit`.

    python benchmarks/bench_train.py [--epochs 10] [--batch-size 256]

Same data (the prepared splits in benchmarks/.work), same model, optimizer and batch size. Prints samples/s
of plain fit and of the stage three ways (numpy input; numpy + per-epoch resume checkpoints, as `dvc repro`
runs it; tf.data streamed from Parquet + checkpoints), their ratios (target >= 0.9), and the fraction of
the CPU's peak FP32 rate the stage reaches
(training ~ 6 FLOPs per parameter per sample; peak = cores x clock x 32 FP32 FLOPs/cycle for AVX2 FMA).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_validate import source_rows  # noqa: E402  (the same prepared events)

WORK = Path(__file__).resolve().parent / ".work"


def peak_flops() -> float:
    """cores x clock (Hz) x 32: FP32 FMA on two 256-bit units."""
    mhz = [float(line.split(":")[1]) for line in Path("/proc/cpuinfo").read_text().splitlines()
           if line.startswith("cpu MHz")]
    return len(os.sched_getaffinity(0)) * (max(mhz) if mhz else 2000.0) * 1e6 * 32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs of each (process warm-up)")
    args = parser.parse_args()
    source_rows()  # makes benchmarks/.work/validate_prepared if needed
    prepared = WORK / "validate_prepared"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from mtt.config import TrainParams, ValidateParams
    from mtt.dataset import open_split, split_path
    from mtt.model import ModelSpec, TargetTransform, build_network, preprocessing_layer
    from mtt.preprocessing import load_reference_scaler
    from mtt.train import TrainPaths, run_train
    from mtt.train.setup import make_optimizer
    from mtt.validate.reference import build_reference

    reference = WORK / "validate_reference"
    if not reference.is_dir():  # the validate stage's output: the scalers fitted on train
        train = open_split(split_path(prepared, "train"))
        build_reference(train.read(), train.metadata["features"], ValidateParams(), reference)
    params = TrainParams(epochs=args.epochs, batch_size=args.batch_size, input="memory")
    variants = {"stage, numpy input": (params, False), "stage + checkpoints": (params, True),
                "stage, streamed + ckpts": (params.model_copy(update={"input": "stream"}), True)}
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
        os.chdir(tmp)
        for _ in range(args.repeat):
            for name, (variant, checkpoints) in variants.items():
                paths = TrainPaths(prepared=prepared, reference=reference, model=Path(tmp) / "models",
                                   checkpoints=Path(tmp) / "checkpoints" if checkpoints else None)
                summary = run_train(variant, paths)
                rates[name] = max(rates.get(name, 0.0), summary["train_samples_per_s"])
    stage = {"train_samples_per_s": rates["stage, numpy input"]}

    split = open_split(split_path(prepared, "train"), params.feature_set)
    features = split.features(params.feature_set)
    x, y = split.arrays(features)
    scaler = load_reference_scaler(reference, params.scaler, params.log_features, features)
    spec = ModelSpec.of(params)
    target = TargetTransform.fit(params.target_transform, y).forward(y).astype(np.float32)
    plain = 0.0
    for _ in range(args.repeat):
        keras.utils.set_random_seed(params.seed)
        network = build_network(len(features), spec, preprocessing_layer(scaler), params.seed)
        network.compile(make_optimizer(params, int(np.ceil(len(x) / params.batch_size))), spec.loss_function())
        # a fresh network and one cold fit call, as in the stage: both include Keras' graph tracing
        start = time.perf_counter()
        network.fit(x, target, batch_size=params.batch_size, epochs=args.epochs, verbose=0)
        plain = max(plain, len(x) * args.epochs / (time.perf_counter() - start))

    flops = 6 * network.count_params() * stage["train_samples_per_s"]
    print(f"train benchmark: {len(x)} train events, {len(features)} features, {network.count_params()} parameters, "
          f"batch {params.batch_size}, {args.epochs} epochs")
    print(f"plain model.fit            {plain:10.0f} samples/s")
    for name, rate in rates.items():
        print(f"{name:27s}{rate:10.0f} samples/s   ratio {rate / plain:.2f}")
    print(f"stage FP32 rate            {flops / 1e9:10.2f} GFLOP/s = {flops / peak_flops():.1%} of peak "
          f"({peak_flops() / 1e9:.0f} GFLOP/s)")


if __name__ == "__main__":
    main()
