"""What a training run is set up with: the compiled network, the optimizer and its schedule, and the tf.distribute
strategy."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from mtt.core.errors import TrainError
from mtt.core.model import ModelSpec, NeutrinoScale, build_network, network_loss, preprocessing_layer
from mtt.core.preprocessing import Scaler
from mtt.stages.train.params import TrainParams


def make_deterministic(seed: int, head: str = "point") -> None:
    """Same params, same weights on one machine: Python, numpy and TensorFlow seeded from train.seed (initial
    weights, Keras' per-epoch shuffle, dropout, augmentation) and TensorFlow's deterministic kernels and tf.data
    order. What still varies across CPU types: docs/tools.md, "Training is reproducible".

    For the flow head, Grappler's arithmetic optimizer is switched off: on that graph its rewrites gave gradients
    that changed from call to call with the order TensorFlow's inter-op threads ran them in (same weights, same
    batch), so two runs of the same params trained different flows. The other heads were reproducible with it, and
    their weights would round differently without it (benchmarks/RESULTS.md, "determinism")."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)  # random.seed, np.random.seed and tf.random.set_seed
    tf.config.experimental.enable_op_determinism()
    tf.config.optimizer.set_experimental_options({"arithmetic_optimization": head != "flow"})


def make_optimizer(params: TrainParams, steps_per_epoch: int) -> Any:
    """Optimizer with the learning-rate schedule and gradient clipping from params."""
    import keras

    rate: Any = params.learning_rate
    total = params.epochs * steps_per_epoch
    if params.schedule == "cosine":
        warmup = params.warmup_epochs * steps_per_epoch
        rate = keras.optimizers.schedules.CosineDecay(
            params.learning_rate / 10 if warmup else params.learning_rate, decay_steps=max(total - warmup, 1),
            warmup_target=params.learning_rate if warmup else None, warmup_steps=warmup)
    elif params.schedule == "exponential":
        rate = keras.optimizers.schedules.ExponentialDecay(params.learning_rate, steps_per_epoch, decay_rate=0.9)
    clip = {"clipnorm": params.clipnorm} if params.clipnorm > 0 else {}
    if params.optimizer == "adam":
        return keras.optimizers.Adam(rate, **clip)
    if params.optimizer == "adamw":
        return keras.optimizers.AdamW(rate, **clip)
    return keras.optimizers.SGD(rate, momentum=0.9, **clip)


def compiled_network(params: TrainParams, features: list[str], scaler: Scaler, steps_per_epoch: int,
                     neutrino_scale: NeutrinoScale | None = None) -> tuple[Any, Any]:
    """(network, ModelSpec): the train params' architecture and head with the scaler inside, compiled with the
    optimizer and the head's loss; built inside the caller's tf.distribute scope."""

    spec = ModelSpec.of(params)
    network = build_network(features, spec, preprocessing_layer(scaler), params.seed, neutrino_scale)
    network.compile(make_optimizer(params, steps_per_epoch), network_loss(network, spec))
    return network, spec


def current_learning_rate(optimizer: Any) -> float:
    """The learning rate in effect now (schedules evaluated at the current step)."""
    rate = optimizer.learning_rate
    return float(np.asarray(rate))


def distribution_strategy(name: str) -> Any:
    """The tf.distribute strategy of train.strategy: one device, all local GPUs, or a TF_CONFIG cluster."""
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise TrainError("train.strategy=multi_worker needs the cluster in the TF_CONFIG environment variable "
                             "(see tf.distribute.MultiWorkerMirroredStrategy); use `default` or `mirrored` on one "
                             "machine")
        try:
            return tf.distribute.MultiWorkerMirroredStrategy()
        except RuntimeError as exc:  # "Collective ops must be configured at program startup"
            raise TrainError(f"train.strategy=multi_worker must set up the cluster before any other TensorFlow "
                             f"work in the process ({exc}): run `mtt train` in a fresh process") from None
    return tf.distribute.get_strategy()


def is_chief(strategy: str) -> bool:
    """Whether this process logs and writes outputs: always, except for non-chief workers of a cluster."""
    if strategy != "multi_worker":
        return True
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = config.get("task", {})
    if task.get("type") == "chief":
        return True
    return task.get("type", "worker") == "worker" and task.get("index", 0) == 0 and "chief" not in config.get(
        "cluster", {})
