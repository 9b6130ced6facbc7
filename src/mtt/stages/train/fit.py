"""The fit loop: the inputs read once, the network built and compiled (or restored from an interrupted run's
state), and `model.fit` with the per-epoch logger, early stopping, the LR plateau and the caller's callbacks.

The order of the set-up is the order of the random draws (seeding, initial weights, the optimizer, the
inference wrapper): `Trainer.build` keeps it, so the same params and data give the same weights.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mtt.core.errors import TrainError
from mtt.core.model import NeutrinoScale, inference_model, network_loss
from mtt.stages.train.callbacks import epoch_logger, restore
from mtt.stages.train.checkpoint import TrainState, data_fingerprint, discard, state_to_resume
from mtt.stages.train.data import TrainingData, ValSet, load_training_data
from mtt.stages.train.inputs import Inputs, open_inputs
from mtt.stages.train.params import TrainParams
from mtt.stages.train.paths import TrainPaths
from mtt.stages.train.setup import compiled_network, distribution_strategy, make_deterministic


def resumable_state(params: TrainParams, checkpoint_dir: Path | None, fingerprint: str) -> TrainState | None:
    """The interrupted run to continue (train.resume), or None; without resume an old state is discarded."""
    if checkpoint_dir is None:
        if params.resume:
            raise TrainError("train.resume needs a checkpoint folder (mtt train --checkpoints)")
        return None
    if not params.resume:
        discard(checkpoint_dir)
        return None
    state = state_to_resume(checkpoint_dir, params.model_dump(), fingerprint)
    if state is None:
        print(f"train: train.resume is set, but {checkpoint_dir} holds no interrupted run: starting a new run")
    else:
        print(f"train: resuming MLflow run {state.run_id} after epoch {state.epoch}")
    return state


def seeded_network(params: TrainParams, inputs: Inputs, n_rows: int, strategy: Any,
                   state: TrainState | None, neutrino_scale: NeutrinoScale | None = None) -> tuple[Any, Any]:
    """(network, ModelSpec): seeded, built and compiled in the strategy's scope, the saved state put back."""
    make_deterministic(params.seed, params.head)
    with strategy.scope():
        network, spec = compiled_network(params, inputs.features, inputs.scaler,
                                         int(np.ceil(n_rows / params.batch_size)), neutrino_scale)
        if state is not None:
            restore(network, state)
    return network, spec


@dataclass
class Trainer:
    """One training run's fit: its inputs and data, the compiled network, and the epochs recorded so far."""

    params: TrainParams
    inputs: Inputs
    data: TrainingData
    val: ValSet
    network: Any
    spec: Any  # mtt.core.model.ModelSpec
    predict: Any  # raw features -> GeV
    state: TrainState | None
    fingerprint: str
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def features(self) -> list[str]:
        """The network's input columns, in the scaler's order (the order the saved model takes)."""
        return list(self.data.scaler.columns)

    @property
    def first_epoch(self) -> int:
        """Where fit starts: 0, or the epoch after the last one a resumed run completed."""
        return 0 if self.state is None else self.state.epoch + 1

    @classmethod
    def build(cls, params: TrainParams, paths: TrainPaths) -> Trainer:
        """Read the data, take the scaler validate fitted, resume state if asked, build and compile the network."""
        inputs = open_inputs(params, paths)
        strategy = distribution_strategy(params.strategy)  # a cluster: before TensorFlow runs anything
        data = load_training_data(params, inputs.train, inputs.scaler)
        fingerprint = data_fingerprint(data.m_tt, len(inputs.features))
        state = resumable_state(params, paths.checkpoints, fingerprint)
        network, spec = seeded_network(params, inputs, data.n_rows, strategy, state, data.neutrino_scale)
        y_val = data.target.forward(inputs.m_val) if data.neutrino_scale is None else \
            data.neutrino_scale.forward(inputs.nu_val)
        val = ValSet(inputs.x_val, inputs.m_val, y_val.astype(np.float32))
        history = [] if state is None else list(state.history)
        return cls(params, inputs, data, val, network, spec, inference_model(network, spec, data.target), state,
                   fingerprint, history)

    def fit(self, logger: Any, extra: list[Any]) -> float:
        """model.fit from the first epoch with the logger, early stopping and LR plateau; return its seconds."""
        import keras

        callbacks = [logger]
        if self.params.early_stopping:
            callbacks.append(keras.callbacks.EarlyStopping(patience=self.params.early_stopping))
        if self.params.schedule == "reduce_on_plateau":
            callbacks.append(keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=3))
        start = time.perf_counter()
        self.network.fit(**self.data.fit_arguments(self.params.batch_size, self.first_epoch),
                         epochs=self.params.epochs, initial_epoch=self.first_epoch, callbacks=callbacks + extra,
                         verbose=0)
        return time.perf_counter() - start

    def logger(self) -> Any:
        """The chief's per-epoch callback: val metrics into this run's history and MLflow, a resumed run's best
        loss and weights carried on."""
        return epoch_logger(self.val, self.predict, self.network, network_loss(self.network, self.spec), self.history,
                            resumed=self.state)

    def fit_silently(self) -> None:
        """A non-chief cluster worker: train in step with the chief, log and write nothing."""
        loss = network_loss(self.network, self.spec)
        self.fit(epoch_logger(self.val, self.predict, self.network, loss, [], log=False), [])
