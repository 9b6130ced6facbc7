"""Hash-based splits: fractions, determinism, stability when the sample grows."""

from __future__ import annotations

import numpy as np
import pytest

from mtt.core.dataset import unit_interval_hash
from mtt.core.events.params import SplitParams
from mtt.stages.prepare.split import assign


def test_fractions_within_statistical_tolerance():
    n = 100_000
    splits = assign(np.ones(n), np.zeros(n), np.arange(n), SplitParams(train=0.6, val=0.3, test=0.1))
    for name, p in (("train", 0.6), ("val", 0.3), ("test", 0.1)):
        assert np.mean(splits == name) == pytest.approx(p, abs=4 * np.sqrt(p * (1 - p) / n))


def test_hash_is_deterministic_and_depends_on_every_identity_field():
    u = unit_interval_hash(np.array([1, 1, 2]), np.array([0, 5, 0]), np.array([7, 7, 7]))
    assert np.array_equal(u, unit_interval_hash(np.array([1, 1, 2]), np.array([0, 5, 0]), np.array([7, 7, 7])))
    assert len(set(u.tolist())) == 3 and np.all((u >= 0) & (u < 1))


def test_growing_the_sample_never_moves_an_event():
    fractions = SplitParams()
    small = assign(np.ones(1000), np.zeros(1000), np.arange(1000), fractions)
    grown = assign(np.ones(5000), np.zeros(5000), np.arange(5000)[::-1], fractions)[::-1]
    assert np.array_equal(small, grown[:1000])


def test_empty_val_fraction():
    splits = assign(np.ones(1000), np.zeros(1000), np.arange(1000), SplitParams(train=0.8, val=0.0, test=0.2))
    assert set(splits.tolist()) == {"train", "test"}
