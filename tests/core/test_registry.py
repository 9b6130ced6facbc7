"""The model registry: models logged self-contained (they load where `mtt` cannot be imported), a version per
training run with alias candidate, and `mtt promote` moving alias champion only to a better version.

The fast tests log tiny real Keras models into real runs of a temporary SQLite store; the slow ones train.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import mlflow
import numpy as np
import pandas as pd
import pytest

from mtt.cli import main
from mtt.core import registry, tracking
from mtt.core.model import ModelSpec, TargetTransform, build_network, inference_model, preprocessing_layer
from mtt.core.preprocessing import Scaler

REPO = Path(__file__).resolve().parents[2]
NAME = "mtt-test"
METRIC = "final/val_resolution"
X = np.random.default_rng(3).normal(100, 20, (64, 3)).astype(np.float32)


def tiny_model(seed: int = 0, scaler: str = "standard") -> keras.Model:
    """An untrained inference model on three features: raw features in, m_tt in GeV out."""
    spec = ModelSpec(depth=1, width=4)
    network = build_network(3, spec, preprocessing_layer(Scaler.fit(scaler, X, ["a", "b", "c"])), seed=seed)
    return inference_model(network, spec, TargetTransform("standardize", 500.0, 100.0))


def logged_version(value: float | None, name: str = NAME, seed: int = 0, scaler: str = "standard",
                   tags: dict[str, str] | None = None) -> tuple[str, str]:
    """A run with `METRIC` = value (None: not logged), `tags`, and a tiny real model logged and registered:
    (run, version)."""
    model = tiny_model(seed, scaler)
    with mlflow.start_run(experiment_id=tracking.ensure_experiment("registry"), tags=tags) as run:  # no set_experiment
        if value is not None:
            mlflow.log_metric(METRIC, value)
        info = registry.log_model(model, X[:5], {"features": ["a", "b", "c"], "outputs": ["m_tt"]})
    version = registry.register(info.model_uri, name, run.info.run_id, METRIC)
    return run.info.run_id, str(version.version)


def promote(capsys, *args: str) -> tuple[int, str, str]:
    """`mtt promote --name NAME --metric METRIC *args`: (exit status, stdout, stderr)."""
    code = main(["promote", "--name", NAME, "--metric", METRIC, *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_layers_file_imports_nothing_of_mtt():
    """It travels alone with every logged model (the flow head's file beside it): any `mtt` import would break
    loading elsewhere."""
    tree = ast.parse((REPO / "src" / "mtt" / "core" / "layers.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "." for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not {m for m in imported if m == "mtt" or m.startswith(("mtt.", "."))}, imported
    assert imported <= {"__future__", "contextlib", "math", "os", "dataclasses", "typing", "keras", "numpy",
                        "mtt_flow_layers"}


def test_the_flow_layers_file_imports_nothing_of_mtt():
    """It travels beside the layers file as `mtt_flow_layers.py`."""
    tree = ast.parse((REPO / "src" / "mtt" / "core" / "flow_layers.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "." for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"__future__", "math", "typing", "keras"}, imported


def test_loading_requirements_are_pinned_as_in_requirements_lock():
    lock = {re.sub(r"[-_.]+", "-", line.split("==")[0]).lower(): line.split("==")[1].strip()
            for line in (REPO / "requirements.lock").read_text().splitlines() if "==" in line}
    pins = registry.loading_requirements()
    assert [p.split("==")[0] for p in pins] == ["keras", "tensorflow-cpu", "numpy"]
    for pin in pins:
        package, version = pin.split("==")
        assert lock[package] == version, pin


def test_a_registered_version_is_the_candidate_with_its_metric_and_loads_through_pyfunc(store, caplog):
    mlflow_logger = logging.getLogger("mlflow")  # MLflow's loggers do not propagate to the root logger
    mlflow_logger.addHandler(caplog.handler)
    try:
        run_id, version = logged_version(0.15)
    finally:
        mlflow_logger.removeHandler(caplog.handler)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text  # no pip-inference fallback
    assert version == "1"
    model = store.get_registered_model(NAME)
    assert model.aliases == {"candidate": 1} and "raw features in GeV" in model.description
    tags = store.get_model_version(NAME, "1").tags
    assert tags == {"promote.metric": METRIC, "promote.value": "0.15"}
    assert store.get_model_version(NAME, "1").description == f"run {run_id}, configuration default: {METRIC} = 0.15"
    loaded = mlflow.pyfunc.load_model(f"models:/{NAME}@candidate")
    assert set(loaded.metadata.flavors) == {"keras", "python_function"}
    assert loaded.metadata.flavors["python_function"]["loader_module"] == "mtt_layers"
    assert loaded.metadata.metadata["features"] == ["a", "b", "c"]
    prediction = np.asarray(loaded.predict(X))
    assert prediction.shape == (64, 1)
    np.testing.assert_allclose(np.asarray(loaded.predict(pd.DataFrame(X, columns=["a", "b", "c"]))), prediction)
    # the keras flavor too, in a process that has the layers (mtt installed)
    keras_model = mlflow.keras.load_model(f"models:/{NAME}/1")
    np.testing.assert_allclose(np.asarray(keras_model(X)), prediction, rtol=1e-6)
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{NAME}/1"))
    assert (local / "code" / "mtt_layers.py").read_text() == (REPO / "src" / "mtt" / "core" / "layers.py").read_text()
    assert (local / "requirements.txt").read_text().split() == [f"mlflow=={mlflow.__version__}",
                                                               *registry.loading_requirements()]
    assert (local / "input_example.json").is_file()


def test_a_versions_description_names_its_run_and_configuration(store):
    """The pipeline's configuration (tag mtt.config) first, else the preset, else the committed params."""
    runs = [logged_version(0.2, tags={"mtt.config": "hybrid_mdn", "preset": "mdn"}),
            logged_version(0.3, tags={"preset": "seed_baseline"}), logged_version(None, tags={"preset": "none"})]
    descriptions = [store.get_model_version(NAME, version).description for _, version in runs]
    assert descriptions == [f"run {runs[0][0]}, configuration hybrid_mdn: {METRIC} = 0.2",
                            f"run {runs[1][0]}, configuration seed_baseline: {METRIC} = 0.3",
                            f"run {runs[2][0]}, configuration default: {METRIC} = not logged yet"]
    assert registry.CONFIG_TAG == "mtt.config"


def test_promote_moves_champion_only_to_a_better_version_and_says_why(store, capsys):
    first, _ = logged_version(0.15)
    code, out, _ = promote(capsys)
    assert code == 0 and out.strip() == (f"mtt promote: {NAME} version 1 is now champion (there was none): no "
                                         f"champion yet: version 1's {METRIC} 0.15")
    logged_version(0.20, seed=1)  # worse: the candidate stays a candidate
    code, out, _ = promote(capsys)
    assert code == 0 and "champion of mtt-test unchanged (version 1): not better: version 2's " \
        f"{METRIC} 0.2 vs champion version 1's 0.15 (lower is better)" in out
    assert store.get_registered_model(NAME).aliases == {"candidate": 2, "champion": 1}
    _, third = logged_version(0.10, seed=2)  # better
    code, out, _ = promote(capsys)
    assert f"version 3 is now champion (was version 1): better: version 3's {METRIC} 0.1 vs champion version " \
        "1's 0.15" in out
    assert store.get_model_version(NAME, third).tags["promotion"].endswith(f"better: version 3's {METRIC} 0.1 vs "
                                                                           "champion version 1's 0.15 (lower is "
                                                                           "better)")
    code, out, _ = promote(capsys, "--run", first)  # worse than the champion: refused without --force
    assert "unchanged (version 3): not better: version 1's" in out and "--force moves it anyway" in out
    code, out, _ = promote(capsys, "--version", "2", "--force")
    assert code == 0 and "version 2 is now champion (was version 3): forced (--force): version 2's " in out
    assert store.get_registered_model(NAME).aliases == {"candidate": 3, "champion": 2}
    code, out, _ = promote(capsys, "--version", "2")
    assert "version 2 is already champion" in out and "nothing to do" in out


def test_missing_model_version_alias_run_and_metric_are_named_without_a_traceback(store, capsys, tmp_path):
    code, _, err = promote(capsys)
    assert code == 2 and f"mtt promote: error: no registered model '{NAME}' in sqlite:///" in err
    assert "registered: none" in err and "Traceback" not in err
    logged_version(None)  # the run never logged the metric
    code, _, err = promote(capsys, "--version", "7")
    assert code == 2 and f"registered model '{NAME}' has no version 7; versions: 1" in err
    code, _, err = promote(capsys, "--run", "0123abc")
    assert code == 2 and f"no version of '{NAME}' comes from run 0123abc" in err
    code, _, err = promote(capsys)
    assert code == 2 and f"has no metric '{METRIC}' to compare: pick another with --metric" in err
    code, out, _ = promote(capsys, "--force")
    assert code == 0 and "version 1 is now champion" in out and f"{METRIC} missing" in out
    store.delete_registered_model_alias(NAME, "candidate")
    code, _, err = promote(capsys)
    assert code == 2 and f"registered model '{NAME}' has no alias 'candidate' (versions: 1): give --version" in err
    params = tmp_path / "params.yaml"
    params.write_text("train:\n  registered_model: ''\n")
    assert main(["promote", "--params", str(params)]) == 2
    assert "train.registered_model is empty" in capsys.readouterr().err
    params.write_text(f"train:\n  registered_model: {NAME}\n  promote_metric: model/resolution\n")
    assert main(["promote", "--params", str(params), "--version", "1"]) == 0  # the defaults come from params
    assert "version 1 is already champion (model/resolution missing)" in capsys.readouterr().out


# --- real training runs ----------------------------------------------------------------------------------

FRESH = textwrap.dedent("""
    import os
    import sys

    src, jobs = sys.argv[1], sys.argv[2:]  # src/, then (model URI, features .npy, predictions .npy) triples
    sys.path[:] = [p for p in sys.path if os.path.realpath(p or ".") != os.path.realpath(src)]  # the editable install


    class NoMtt:
        '''This process cannot import mtt, whatever the editable install put on sys.path.'''

        def find_spec(self, name, path=None, target=None):
            if name == "mtt" or name.startswith("mtt."):
                raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
            return None


    sys.meta_path.insert(0, NoMtt())
    import importlib.util

    try:
        import mtt  # noqa: F401
    except ModuleNotFoundError:
        pass
    else:
        raise SystemExit("mtt is importable")
    assert importlib.util.find_spec("mtt_layers") is None, "the layers module is on sys.path before loading"
    import mlflow
    import numpy as np

    for uri, features, out in zip(jobs[::3], jobs[1::3], jobs[2::3], strict=True):
        model = mlflow.pyfunc.load_model(uri)
        np.save(out, np.asarray(model.predict(np.load(features))))
    print("layers from", sys.modules["mtt_layers"].__file__, "| mtt imported:", "mtt" in sys.modules)
""")


def load_in_a_fresh_process(inputs: dict[str, np.ndarray], tmp_path: Path) -> tuple[list[np.ndarray], str]:
    """`mlflow.pyfunc.load_model(uri).predict(x)` for each (uri, x) in one `python -I` (no user site, no
    PYTHONPATH, no cwd on sys.path) with src/ off sys.path and `import mtt` blocked: (predictions, its output)."""
    script = tmp_path / "fresh.py"
    script.write_text(FRESH)
    jobs = []
    for i, (uri, x) in enumerate(inputs.items()):
        np.save(tmp_path / f"x{i}.npy", x)
        jobs += [uri, str(tmp_path / f"x{i}.npy"), str(tmp_path / f"y{i}.npy")]
    env = {**os.environ, "PYTHONNOUSERSITE": "1"}
    result = subprocess.run([sys.executable, "-I", str(script), str(REPO / "src"), *jobs], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return [np.load(tmp_path / f"y{i}.npy") for i in range(len(inputs))], result.stdout


@pytest.mark.slow  # two tiny trainings (~6 s) and a fresh Python with TensorFlow (~8 s)
def test_registered_models_load_where_mtt_cannot_be_imported(small_prepared, store, tmp_path):
    from mtt.stages.train.params import TrainParams
    from mtt.stages.train.stage import TrainPaths, run_train

    dense = TrainParams(epochs=1, batch_size=64, width=16, depth=1, registered_model=NAME)
    objects = dense.model_copy(update={"feature_set": "objects+ellipse", "architecture": "set", "max_jets": 4,
                                       "set_dim": 8, "set_layers": 1, "set_heads": 2, "head": "mdn",
                                       "mdn_components": 2})
    val = pd.read_parquet(small_prepared / "val.parquet")
    expected = {}
    for params in (dense, objects):  # AffineScale, ObjectTokens, MaskedMean, ToGeV (point and mixture mean)
        folder = tmp_path / params.architecture
        run_train(params, TrainPaths(prepared=small_prepared, reference=small_prepared.parent / "reference",
                                     model=folder))
        features = json.loads((folder / "model.json").read_text())["features"]
        x = val[features].to_numpy(np.float32)
        expected[params.architecture] = x, np.asarray(keras.models.load_model(folder / "model.keras")(x))
    assert store.get_registered_model(NAME).aliases == {"candidate": 2}
    logged_version(None, name="mtt-quantile", scaler="quantile")  # QuantileScale: untrained, the same numbers
    expected["quantile"] = X, np.asarray(tiny_model(scaler="quantile")(X))
    uris = {f"models:/{NAME}/1": "dense", f"models:/{NAME}@candidate": "set", "models:/mtt-quantile/1": "quantile"}
    predictions, printed = load_in_a_fresh_process({uri: expected[a][0] for uri, a in uris.items()}, tmp_path)
    assert "mtt imported: False" in printed and "/code/mtt_layers.py" in printed, printed
    for predicted, architecture in zip(predictions, uris.values(), strict=True):
        x, own = expected[architecture]
        assert predicted.shape == own.shape == (len(x), 1)
        np.testing.assert_allclose(predicted, own, rtol=1e-5)
        assert 200 < np.median(predicted) < 2000  # GeV


def test_promote_compares_two_training_runs_by_the_metric_in_params(small_prepared, store, tmp_path, capsys):
    """Two tiny real trainings (~3 s): their registered versions, promoted by params' train.promote_metric."""
    from mtt.stages.train.params import TrainParams
    from mtt.stages.train.stage import TrainPaths, run_train

    params_file = tmp_path / "params.yaml"
    params_file.write_text(f"train:\n  registered_model: {NAME}\n")  # promote_metric: the default
    runs = []
    for epochs in (1, 3):
        params = TrainParams(epochs=epochs, batch_size=64, width=16, depth=1, registered_model=NAME)
        runs.append(run_train(params, TrainPaths(prepared=small_prepared, reference=small_prepared.parent /
                                                 "reference", model=tmp_path / f"models{epochs}"))["run_id"])
    first, second = (store.get_run(r).data.metrics[METRIC] for r in runs)
    assert main(["promote", "--params", str(params_file), "--version", "1"]) == 0
    assert f"version 1 is now champion (there was none): no champion yet: version 1's {METRIC} {first:.4g}" in \
        capsys.readouterr().out
    assert main(["promote", "--params", str(params_file)]) == 0  # the candidate: version 2
    out = capsys.readouterr().out
    versus = f"version 2's {METRIC} {second:.4g} vs champion version 1's {first:.4g} (lower is better)"
    assert versus in out
    assert ("version 2 is now champion (was version 1): better" in out) == (second < first), out
    worse = "1" if second < first else "2"
    champion = store.get_registered_model(NAME).aliases["champion"]
    assert main(["promote", "--params", str(params_file), "--version", worse]) == 0
    assert str(champion) != worse and "not better" in capsys.readouterr().out
    assert main(["promote", "--params", str(params_file), "--run", runs[int(worse) - 1], "--force"]) == 0
    assert f"version {worse} is now champion" in capsys.readouterr().out
    assert str(store.get_registered_model(NAME).aliases["champion"]) == worse
