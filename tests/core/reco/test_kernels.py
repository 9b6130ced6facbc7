"""The ellipse method's compiled loops: a true fused multiply-add, numpy's roundings, and each kernel's job."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from mtt.core.reco import kernels
from mtt.core.reco.ellipse import neutrino_ellipse


@njit
def _fma(a, b, c):  # noqa: ANN001, ANN202 - a numba-typed wrapper of the intrinsic
    return kernels.fma(a, b, c)


@pytest.fixture(scope="module")
def ellipse_pairs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """H of 400 nu and nubar ellipses from random b-jet / lepton momenta, and a MET near their sum."""
    rng = np.random.default_rng(7)
    n = 2000
    p = rng.normal(0, 60, size=(4, n, 3))
    masses = np.array([4.8, 0.0, 4.8, 0.0])[:, None]
    four = np.concatenate([p, np.sqrt((p**2).sum(-1) + masses**2)[..., None]], axis=-1)
    h1, ok1 = neutrino_ellipse(four[0], four[1])
    h2, ok2 = neutrino_ellipse(four[2], four[3])
    keep = np.flatnonzero(ok1 & ok2)[:400]
    met = h1[keep, :2, 2] + h2[keep, :2, 2] + rng.normal(0, 20, size=(len(keep), 2))
    return h1[keep], h2[keep], met


def test_fma_rounds_once():
    """(1 + 2^-30)^2 - (1 + 2^-29) is 2^-60 exactly; a multiply then an add rounds it away to 0."""
    x = 1 + 2.0**-30
    assert _fma(x, x, -(1 + 2.0**-29)) == 2.0**-60
    assert x * x - (1 + 2.0**-29) == 0.0


def test_conics_round_as_numpys_matrix_products(ellipse_pairs):
    """q1 = (K^T K, K^T v; v^T K, |v|^2 - det^2) / norm with numpy's `@`, bit for bit (the answers pin on it)."""
    h1, h2, met = ellipse_pairs
    a, c = h1[:, :2, :2], h1[:, :2, 2]
    adj = np.stack([np.stack([a[:, 1, 1], -a[:, 0, 1]], -1), np.stack([-a[:, 1, 0], a[:, 0, 0]], -1)], 1)
    det = a[:, 0, 0] * a[:, 1, 1] - a[:, 0, 1] * a[:, 1, 0]
    v = -(adj @ c[:, :, None])[:, :, 0]
    q = np.empty((len(a), 3, 3))
    q[:, :2, :2] = np.swapaxes(adj, 1, 2) @ adj
    q[:, :2, 2] = q[:, 2, :2] = (np.swapaxes(adj, 1, 2) @ v[:, :, None])[:, :, 0]
    q[:, 2, 2] = (v[:, 0] * v[:, 0] + v[:, 1] * v[:, 1]) - det**2
    q /= np.linalg.norm(q, axis=(1, 2))[:, None, None]
    q1, _, finite, _ = kernels.pencils(h1, h2, met)
    assert finite.all()
    np.testing.assert_array_equal(q1, q, err_msg="the kernels no longer round as this machine's BLAS does")


def test_conic_contains_its_ellipse(ellipse_pairs):
    """Every transverse point A u(t) + c of the nu ellipse lies on q1: X^T q1 X = 0."""
    h1, h2, met = ellipse_pairs
    q1, _, _, _ = kernels.pencils(h1, h2, met)
    t = np.linspace(0, 2 * np.pi, 7)
    x = np.einsum("nij,tj->nti", h1[:, :2, :], np.stack([np.cos(t), np.sin(t), np.ones_like(t)], -1))
    homogeneous = np.concatenate([x, np.ones(x.shape[:2] + (1,))], axis=-1)
    on = np.einsum("nti,nij,ntj->nt", homogeneous, q1, homogeneous)
    scale = np.einsum("nti,nti->nt", homogeneous, homogeneous)
    assert np.abs(on / scale).max() < 1e-12


def test_pencil_matrix_is_adjugate_times_q1(ellipse_pairs):
    h1, h2, met = ellipse_pairs
    q1, q2, _, m = kernels.pencils(h1, h2, met)
    expected = (np.linalg.det(q2)[:, None, None] * np.linalg.inv(q2)) @ q1
    np.testing.assert_allclose(m, expected, rtol=1e-6, atol=1e-12)


def test_grid_starts_are_the_best_grid_point_and_the_best_elsewhere(ellipse_pairs):
    h1, h2, met = ellipse_pairs
    a1, a2 = np.ascontiguousarray(h1[:, :2, :2]), np.ascontiguousarray(h2[:, :2, :2])
    target = np.ascontiguousarray(met - h1[:, :2, 2] - h2[:, :2, 2])
    grid = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    starts = kernels.grid_starts(a1, a2, target, np.cos(grid), np.sin(grid))
    u = np.stack([np.cos(grid), np.sin(grid)])
    r = target[:, :, None, None] - (a1 @ u)[:, :, :, None] - (a2 @ u)[:, :, None, :]
    f = (r**2).sum(axis=1).reshape(len(target), -1)
    np.testing.assert_array_equal(starts[:, 0], np.argmin(f, axis=1))
    i, j = np.divmod(starts[:, 1], 24)
    i0, j0 = np.divmod(starts[:, 0], 24)
    apart = (np.minimum((i - i0) % 24, (i0 - i) % 24) > 2) | (np.minimum((j - j0) % 24, (j0 - j) % 24) > 2)
    assert apart.all()


def test_nearest_approach_beats_a_fine_scan(ellipse_pairs):
    """Damped Newton from the grid starts ends at or below the best of a 360 x 360 scan of (t1, t2)."""
    h1, h2, met = ellipse_pairs
    a1, a2 = np.ascontiguousarray(h1[:50, :2, :2]), np.ascontiguousarray(h2[:50, :2, :2])
    target = np.ascontiguousarray(met[:50] - h1[:50, :2, 2] - h2[:50, :2, 2])
    grid = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    starts = kernels.grid_starts(a1, a2, target, np.cos(grid), np.sin(grid))
    _, _, residual = kernels.nearest(a1, a2, target, grid[starts // 24], grid[starts % 24], (15, 1e-3, 1e-10))
    fine = np.linspace(0, 2 * np.pi, 360, endpoint=False)
    u = np.stack([np.cos(fine), np.sin(fine)])
    r = target[:, :, None, None] - (a1 @ u)[:, :, :, None] - (a2 @ u)[:, :, None, :]
    scan = np.sqrt((r**2).sum(axis=1).reshape(len(target), -1).min(axis=1))
    assert (residual <= scan * (1 + 1e-9) + 1e-9).all()
