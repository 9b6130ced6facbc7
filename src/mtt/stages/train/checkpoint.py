"""Per-epoch training state, so an interrupted run continues from its last epoch into the same MLflow run.

One file, `state.npz`, written atomically after every epoch: network weights, optimizer state (step,
learning rate, moments), the best weights so far, the history, the MLflow run id, the params and a
fingerprint of the train data. Resuming checks that params (except `epochs` and `resume`) and data are
unchanged, so a resumed run is the run it claims to be.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mtt.core.errors import TrainError
from mtt.core.io import atomic_file

STATE_FILE = "state.npz"
#: params that may change between the interrupted run and its resumption
MAY_CHANGE = ("epochs", "resume")


@dataclass
class TrainState:
    """Everything needed to continue after `epoch` (the last completed epoch)."""

    epoch: int
    run_id: str
    params: dict[str, Any]
    data: str
    history: list[dict[str, float]] = field(default_factory=list)
    best_loss: float = float("inf")
    weights: list[np.ndarray] = field(default_factory=list)
    optimizer: list[np.ndarray] = field(default_factory=list)
    best_weights: list[np.ndarray] = field(default_factory=list)


def data_fingerprint(m_tt: np.ndarray, n_features: int) -> str:
    """SHA-256 of the train target and the feature count: changes when the train data does."""
    digest = hashlib.sha256(np.ascontiguousarray(m_tt, dtype=np.float64).tobytes())
    digest.update(str(n_features).encode())
    return digest.hexdigest()


def save_state(folder: str | os.PathLike[str], state: TrainState) -> None:
    """Write the state atomically: a crash while writing keeps the previous epoch's state."""
    meta = {k: getattr(state, k) for k in ("epoch", "run_id", "params", "data", "history", "best_loss")}
    arrays = {"meta": np.array(json.dumps(meta))}
    for group in ("weights", "optimizer", "best_weights"):
        arrays.update({f"{group}/{i}": np.asarray(a) for i, a in enumerate(getattr(state, group))})
    with atomic_file(Path(folder) / STATE_FILE) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)


def load_state(folder: str | os.PathLike[str]) -> TrainState | None:
    """The saved state, or None if there is none."""
    path = Path(folder) / STATE_FILE
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as stored:
            meta = json.loads(str(stored["meta"]))
            groups: dict[str, list[np.ndarray]] = {"weights": [], "optimizer": [], "best_weights": []}
            for group, items in groups.items():
                count = sum(1 for k in stored.files if k.startswith(f"{group}/"))
                items.extend(stored[f"{group}/{i}"] for i in range(count))
        return TrainState(**meta, **groups)
    except Exception as exc:  # numpy, zipfile and json raise many kinds for a damaged file
        raise TrainError(f"{path}: not a readable training state ({type(exc).__name__}: {exc}); delete it to start "
                         "a new run, or set train.resume=false") from None


def discard(folder: str | os.PathLike[str]) -> None:
    """Remove a saved state (after a finished run, or when starting afresh)."""
    (Path(folder) / STATE_FILE).unlink(missing_ok=True)


def state_to_resume(folder: str | os.PathLike[str], params: dict[str, Any], data: str) -> TrainState | None:
    """The saved state if it belongs to these params and data; a clear error if it belongs to another run."""
    state = load_state(folder)
    if state is None:
        return None
    changed = sorted(k for k in set(params) | set(state.params)
                     if k not in MAY_CHANGE and params.get(k) != state.params.get(k))
    if changed:
        raise TrainError(f"{Path(folder) / STATE_FILE}: the interrupted run (MLflow run {state.run_id}) used "
                         f"different train params: {', '.join(changed)}; restore them, or set train.resume=false "
                         "to start a new run")
    if state.data != data:
        raise TrainError(f"{Path(folder) / STATE_FILE}: the train data changed since the interrupted run "
                         f"(MLflow run {state.run_id}); set train.resume=false to start a new run")
    return state
