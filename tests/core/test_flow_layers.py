"""The conditional flow: it starts as the identity, inverts, integrates to one, and learns a known density."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from mtt.core.flow_layers import ConditionalFlow, SplineCoupling, standard_normal_log_prob


def _random_flow(dims: int = 2, context: int = 3, seed: int = 0) -> ConditionalFlow:
    """A flow whose splines are far from the identity (random last layers)."""
    keras.utils.set_random_seed(seed)
    flow = ConditionalFlow(dims, layers=4, bins=6, bound=4.0, hidden=16)
    flow.log_prob(np.zeros((1, dims), "float32"), np.zeros((1, context), "float32"))
    rng = np.random.default_rng(seed)
    for coupling in flow.couplings:
        coupling.out.set_weights([rng.normal(0, 0.2, w.shape).astype("float32") for w in coupling.out.get_weights()])
    return flow


def test_a_new_flow_is_the_standard_normal() -> None:
    flow = ConditionalFlow(4, layers=2)
    x = np.random.default_rng(0).normal(size=(50, 4)).astype("float32")
    context = np.ones((50, 5), "float32")
    assert np.allclose(flow.log_prob(x, context), standard_normal_log_prob(x), atol=1e-5)


def test_sampling_is_the_inverse_of_the_density_direction() -> None:
    flow = _random_flow()
    context = np.random.default_rng(1).normal(size=(300, 3)).astype("float32")
    z = np.random.default_rng(2).normal(size=(300, 2)).astype("float32")
    x = z
    for coupling in reversed(flow.couplings):
        x, _ = coupling(x, context, inverse=True)
    back = x
    for coupling in flow.couplings:
        back, _ = coupling(back, context)
    assert np.allclose(back, z, atol=1e-4)


def test_the_density_integrates_to_one() -> None:
    """p(x | context) summed over a fine grid of the plane (a change of variables gone wrong would not be 1)."""
    flow = _random_flow()
    edges = np.linspace(-9, 9, 361)
    centres = (edges[:-1] + edges[1:]) / 2
    grid = np.stack(np.meshgrid(centres, centres), axis=-1).reshape(-1, 2).astype("float32")
    context = np.tile(np.array([[0.3, -1.0, 2.0]], "float32"), (len(grid), 1))
    density = np.exp(np.asarray(flow.log_prob(grid, context)))
    assert density.sum() * np.diff(edges)[0] ** 2 == pytest.approx(1.0, abs=0.002)


@pytest.mark.slow
def test_it_learns_a_conditional_density() -> None:
    """x = (c, -c / 2) + N(0, 0.3^2) given c: the samples' mean follows c after a short maximum-likelihood fit."""
    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    c = rng.uniform(-2, 2, size=(4000, 1)).astype("float32")
    x = (np.hstack([c, -c / 2]) + rng.normal(0, 0.3, size=(4000, 2))).astype("float32")
    flow = ConditionalFlow(2, layers=4, bins=8, bound=5.0, hidden=32)
    optimizer = keras.optimizers.Adam(3e-3)
    import tensorflow as tf

    @tf.function
    def step(xb: tf.Tensor, cb: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = -ops.mean(flow.log_prob(xb, cb))
        optimizer.apply_gradients(zip(tape.gradient(loss, flow.trainable_variables), flow.trainable_variables,
                                      strict=True))
        return loss

    for _epoch in range(30):
        for start in range(0, 4000, 500):
            loss = step(x[start:start + 500], c[start:start + 500])
    probe = np.repeat(np.array([[-1.5], [0.0], [1.5]], "float32"), 2000, axis=0)
    draws = np.asarray(flow.sample(probe, seed=7)).reshape(3, 2000, 2)
    assert np.allclose(draws.mean(axis=1), [[-1.5, 0.75], [0.0, 0.0], [1.5, -0.75]], atol=0.1)
    assert np.allclose(draws.std(axis=1), 0.3, atol=0.06)
    # the last batch's loss is near the true conditional entropy of two N(0, 0.3^2): log(2 pi e 0.09) = 0.43
    assert float(loss) == pytest.approx(0.43, abs=0.1)


def test_a_coupling_layer_survives_its_config() -> None:
    layer = SplineCoupling([True, False, True], bins=5, bound=3.0, hidden=8)
    again = SplineCoupling.from_config(layer.get_config())
    assert (again.mask, again.bins, again.bound, again.hidden) == ([True, False, True], 5, 3.0, 8)


def test_visible_momenta_and_m_tt_of_a_hand_event():
    """l+ and l- back to back along x (10 GeV), b jets back to back along y (E 25 GeV), the neutrino and
    antineutrino back to back along z (30 GeV each): m_tt = the total energy, 10 + 10 + 25 + 25 + 30 + 30 = 130."""
    from mtt.core.dataset import LOWLEVEL
    from mtt.core.flow_layers import NeutrinoFlow, VisibleMomenta, visible_columns

    row = dict.fromkeys(LOWLEVEL, 0.0)
    for name, pt, phi, energy in (("lplus", 10, 0, 10), ("lminus", 10, np.pi, 10), ("b1", 20, np.pi / 2, 25),
                                  ("b2", 20, -np.pi / 2, 25)):
        row.update({f"{name}_pt": pt, f"{name}_eta": 0.0, f"{name}_phi": phi, f"{name}_e": energy})
    x = np.array([[row[c] for c in LOWLEVEL]], np.float32)
    visible = np.asarray(VisibleMomenta(visible_columns(LOWLEVEL))(x))
    assert visible.shape == (1, 16) and visible[0, 3::4].tolist() == [10, 10, 25, 25]
    assert np.abs(visible[0].reshape(4, 4)[:, :3].sum(axis=0)).max() < 1e-5  # the visible momenta cancel
    flow = NeutrinoFlow(2, [0.0] * 6, [1.0] * 6)
    joined = np.concatenate([np.zeros((1, 2), np.float32), visible], axis=1)
    nu = np.array([[[0.0, 0.0, 30.0, 0.0, 0.0, -30.0]]], np.float32)
    assert np.asarray(flow.m_tt(joined, nu))[0, 0] == pytest.approx(130.0, rel=1e-6)
    with pytest.raises(ValueError, match=r"missing \['lplus_pt'"):
        visible_columns(LOWLEVEL[4:])
