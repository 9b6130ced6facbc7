"""The solver's answers on real events stay those of the reference implementation, to 1e-9 on every event.

`ellipse_frozen.npz` holds 2900 events of the pipeline's simulation (data/raw of 2026-12-04, 200k parton-level
Pythia events) smeared as `benchmarks/bench_evaluate.py` smears them (seed 1): 1500 with an exact solution,
1000 from the nearest approach, 400 from the clamped (degenerate) ellipses, drawn at random (seed 30) from each
class; with what `reconstruct_mtt` of commit b01926a (before the #30 speed-up) returned for them. A faster
solver must give the same m_tt, not only a similar resolution.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mtt.core.reco.ellipse import reconstruct_mtt

FROZEN = Path(__file__).with_name("ellipse_frozen.npz")
INPUTS = ("lplus", "lminus", "b1", "b2", "met_x", "met_y")


@pytest.fixture(scope="module")
def frozen() -> dict[str, np.ndarray]:
    """Inputs and reference outputs of the frozen events."""
    with np.load(FROZEN) as data:
        return dict(data)


@pytest.mark.parametrize("chunk_size", [8192, 700])
def test_same_answers_as_the_frozen_reference(frozen, chunk_size):
    result = reconstruct_mtt(*(frozen[k] for k in INPUTS), chunk_size=chunk_size)
    for name in ("m_tt", "met_residual"):
        np.testing.assert_allclose(getattr(result, name), frozen[name], rtol=1e-9, atol=0, equal_nan=True,
                                   err_msg=name)
    for name in ("exact", "pairing", "n_solutions", "degenerate"):
        np.testing.assert_array_equal(getattr(result, name), frozen[name], err_msg=name)


def test_frozen_sample_covers_every_route(frozen):
    assert frozen["exact"].sum() == 1500 and frozen["degenerate"].sum() == 400
    assert set(np.unique(frozen["n_solutions"])) >= {0, 2, 4, 6, 8}
