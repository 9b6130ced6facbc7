"""The Keras callbacks of a training run: per-epoch GeV metrics and MLflow logging, and the resume state.

Keras' own `EarlyStopping(restore_best_weights=True)` and `TerminateOnNaN` are not used: the best weights
must survive an interrupted run (they are part of the saved state), and a per-batch hook makes Keras fetch
the logs after every step (a device sync per batch); the NaN check here runs once per epoch and names it.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from mtt.core.errors import TrainError
from mtt.core.metric_names import epoch_metric
from mtt.core.metrics import median_bias, resolution, rmse, width_ratio
from mtt.stages.train.checkpoint import TrainState, save_state
from mtt.stages.train.data import ValSet
from mtt.stages.train.setup import current_learning_rate

#: metrics of short epochs are written together, at most this often (seconds)
FLUSH_SECONDS = 2.0


def epoch_logger(val: ValSet, predict: Any, network: Any, loss_fn: Any, history: list[dict[str, float]],
                 log: bool = True, resumed: TrainState | None = None) -> Any:
    """A Keras callback: per epoch, one forward pass over val gives val_loss and the GeV metrics.

    It puts val_loss into the epoch logs (early stopping and LR plateau read it there), keeps the best
    weights in memory, logs to MLflow with step = epoch (unless `log` is false: a non-chief worker) the physics
    figures under `epoch/` (the UI's first section) and the diagnostics (learning rate, gradient norm, dead-ReLU
    fraction, output bias) under `watch/`, a section of their own after the evaluation's (`metric_names`), and
    stops the run on a NaN loss. The history keeps the bare names (history.csv's columns). Next to the
    optimised loss, whose scale depends on the target transform and the head, it logs the val RMSE in GeV: the
    loss-like figure that compares across runs. A resumed run starts from the saved best loss and weights.

    MLflow writes are batched: an epoch's metrics go out at once when FLUSH_SECONDS have passed since the
    last write (every epoch of a real run), else with the next one; `flush()` (called at the end of training
    and by the stage on any exit) writes what is left. One SQLite transaction per epoch of a few hundred
    milliseconds would cost ~5% of the fit.
    """
    import keras
    import mlflow
    import tensorflow as tf
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    loss_object = keras.losses.get(loss_fn) if isinstance(loss_fn, str) else loss_fn
    to_gev = gev_reader(predict)
    x_val, y_val = tf.constant(val.x), tf.constant(val.y)

    probed, head = relu_probe(network), output_layer(network)

    @tf.function
    def val_pass() -> tuple[Any, Any, Any, Any]:
        """Per-event val losses, GeV predictions, the dead-ReLU fraction (from the same forward pass) and the
        global gradient norm on 1024 val events: one graph, traced once, so the per-epoch cost is a few
        milliseconds."""
        output, *activations = probed(x_val, training=False)
        with tf.GradientTape() as tape:
            loss = loss_object(y_val[:1024], network(x_val[:1024], training=False))
        norm = tf.linalg.global_norm([g for g in tape.gradient(loss, network.trainable_weights) if g is not None])
        dead = dead_fraction(activations) if activations else tf.constant(0.0)
        return loss_object(y_val, output), to_gev(output), norm, dead

    class EpochLogger(keras.callbacks.Callback):
        best_loss = np.inf if resumed is None else resumed.best_loss
        best_weights: list[np.ndarray] | None = None if resumed is None else resumed.best_weights

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = logs if logs is not None else {}
            if not np.isfinite(logs.get("loss", np.nan)):
                self.model.stop_training = True
                raise TrainError(f"the loss became {logs.get('loss')} at epoch {epoch}: diverged "
                                 "(lower train.learning_rate, set train.clipnorm, or standardise the target)")
            losses, gev, norm, dead = val_pass()
            logs["val_loss"] = val_loss = float(np.mean(np.asarray(losses)))
            if val_loss < self.best_loss:
                self.best_loss, self.best_weights = val_loss, network.get_weights()
            pred = np.asarray(gev).reshape(len(val.x), -1)[:, 0]
            row = {"loss": float(logs["loss"]), "val_loss": val_loss, "val_rmse_gev": rmse(pred, val.m_tt),
                   "learning_rate": current_learning_rate(self.model.optimizer), "grad_norm": float(norm),
                   "val_resolution": resolution(pred, val.m_tt), "val_bias": median_bias(pred, val.m_tt),
                   "val_width_ratio": width_ratio(pred, val.m_tt), "dead_relu_fraction": float(dead),
                   "output_bias": float(np.mean(np.abs(keras.ops.convert_to_numpy(head.bias))))}
            history.append({"epoch": epoch, **row})
            if log:
                now = int(time.time() * 1000)
                self.pending += [Metric(epoch_metric(key), value, now, epoch) for key, value in row.items()]
                if time.monotonic() - self.flushed >= FLUSH_SECONDS:
                    self.flush()

        def on_train_end(self, logs: dict | None = None) -> None:
            self.flush()

        def flush(self) -> None:
            """Write the metrics not written yet, in one batch, into the active run."""
            if self.pending:
                MlflowClient().log_batch(mlflow.active_run().info.run_id, metrics=self.pending)
                self.pending = []
            self.flushed = time.monotonic()

    val_pass()  # trace the graph now, with the network's other set-up, not inside the first epoch
    logger = EpochLogger()
    logger.pending, logger.flushed = [], time.monotonic()
    return logger


def gev_reader(predict: Any) -> Any:
    """The inference model's last step, network output -> GeV (the flow's: draws from the posterior)."""
    from mtt.core.flow_layers import NeutrinoFlow

    last = predict.layers[-1]
    return (lambda output: last(output, sample=True)) if isinstance(last, NeutrinoFlow) else last


def relu_probe(network: Any) -> Any:
    """The network with the outputs of its ReLU units (Dense with relu, or a relu activation layer) after its
    own output, sharing its weights: a unit that is zero for every val event is dead and no longer learns."""
    import keras

    def is_relu(layer: Any) -> bool:
        activation = getattr(layer, "activation", None)
        return isinstance(layer, (keras.layers.Dense, keras.layers.Activation)) and \
            getattr(activation, "__name__", "") == "relu" or isinstance(layer, keras.layers.ReLU)

    outputs = [layer.output for layer in network.layers if is_relu(layer)]
    return keras.Model(network.inputs, [network.outputs[0], *outputs])


def dead_fraction(activations: Any) -> Any:
    """Share of ReLU units that are zero for every event of the batch."""
    import tensorflow as tf

    dead = [tf.reduce_all(tf.reshape(a, (tf.shape(a)[0], -1)) <= 0.0, axis=0) for a in activations]
    flags = tf.concat(dead, axis=0)
    return tf.reduce_mean(tf.cast(flags, tf.float32))


def output_layer(network: Any) -> Any:
    """The last Dense layer: its bias has to grow to the target's scale when the target is not standardised."""
    import keras

    return [layer for layer in network.layers if isinstance(layer, keras.layers.Dense)][-1]


def checkpointer(folder: str | os.PathLike[str], logger: Any, history: list[dict[str, float]],
                 identity: dict[str, Any]) -> Any:
    """A Keras callback, last in the list: after each epoch, save the state a resumed run continues from."""
    import keras

    class Checkpointer(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            optimizer = [keras.ops.convert_to_numpy(v) for v in self.model.optimizer.variables]
            save_state(folder, TrainState(epoch=epoch, history=history, best_loss=logger.best_loss,
                                          weights=self.model.get_weights(), optimizer=optimizer,
                                          best_weights=logger.best_weights, **identity))

    return Checkpointer()


def restore(network: Any, state: TrainState) -> None:
    """Put the saved weights and optimizer state (step, learning rate, moments) back into a compiled network."""
    network.set_weights(state.weights)
    network.optimizer.build(network.trainable_variables)
    for variable, value in zip(network.optimizer.variables, state.optimizer, strict=True):
        variable.assign(value)
