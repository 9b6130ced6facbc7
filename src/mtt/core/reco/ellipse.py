"""Ellipse method for the two neutrinos of dilepton ttbar (Betchart, Demina, Harel, NIM A 736 (2014) 169).

float64 throughout: numpy over whole arrays of events, and per-event loops compiled with numba
(`mtt.core.reco.kernels`, the same arithmetic as the numpy solver they replaced). Conventions: t -> b l+ nu,
tbar -> bbar l- nubar; four-vectors are (n, 4) arrays of (px, py, pz, E) in GeV.

Method (arXiv:1305.1878):

1. For one (b, l) pair, the W-mass, top-mass and neutrino-mass constraints leave the neutrino momentum on an
   ellipse p_nu = H (cos t, sin t, 1) (`neutrino_ellipse`). No ellipse exists where the pair cannot satisfy
   the constraints (e.g. m(b l) too large for m_t): such a pair has no solution.
2. MET fixes nubar_T = MET - nu_T, so nu_T lies on two conics of the transverse plane: the projection of the
   nu ellipse and the reflected projection of the nubar ellipse. Their (up to 4) intersections are the exact
   solutions (`solve_neutrinos`): a real degenerate member of the pencil of the two conics (a generalised
   eigenvalue: a closed-form cubic, `np.linalg.eigvals` where that is ill-conditioned) is split into two
   lines, each line is intersected with the nu conic, and each point is polished by damped Newton steps on the
   two ellipse parameters; a point is exact when its MET mismatch is below EXACT_TOL of the event's momentum
   scale.
3. Without an exact solution, the nearest approach (`nearest_neutrinos`): the ellipse parameters (t1, t2)
   minimising `|MET - nu_T(t1) - nubar_T(t2)|^2`, from a coarse grid refined by damped Newton steps; the
   remaining MET mismatch (GeV) is reported. It needs both ellipses; without them the result is NaN.

Solution rule of `reconstruct_mtt` (quoted by the evaluation as `SOLUTION_RULE`): both b-jet / lepton
pairings are solved (0: b1 with l+ and b2 with l-; 1: swapped). Among all exact solutions of both pairings,
the one with the smallest m_tt is taken. If neither pairing has an exact solution, the pairing whose nearest
approach has the smaller MET mismatch is taken, with its nearest-approach neutrinos. If neither pairing has
both ellipses, m_tt is NaN (pairing -1).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from mtt.core.reco import kernels

SOLUTION_RULE = (
    "Both b-jet/lepton pairings are solved (0: b1 with l+ and b2 with l-; 1: swapped). Among all exact "
    "solutions of both pairings the one with the smallest m_tt is taken; if neither pairing has an exact "
    "solution, the pairing whose nearest approach has the smaller MET mismatch is taken, with its "
    "nearest-approach neutrinos; if neither pairing has both neutrino ellipses, the same is done with the "
    "ellipses clamped to Z^2 = 0 (a point each: 'degenerate'); only non-finite inputs give no m_tt."
)

M_W = 80.4
M_T = 172.5
#: events per chunk in `reconstruct_mtt` (bounds memory: the fallback grid is GRID^2 * 8 B = 4.6 kB an event)
CHUNK = 8192
#: grid points per ellipse parameter for the nearest-approach start
GRID = 24
#: damped Newton iterations of the nearest approach
FALLBACK_STEPS = 15
#: damped Newton steps polishing each exact intersection, and their initial damping
POLISH_STEPS = 8
POLISH_DAMPING = 1e-9
#: polishing stops below this MET mismatch, relative to the event's momentum scale
POLISH_TOL = 1e-13
#: initial damping of the nearest-approach steps
FALLBACK_DAMPING = 1e-3
#: an intersection is exact when its MET mismatch is below this fraction of the event's momentum scale
EXACT_TOL = 1e-7
#: (rad) damped Newton stops once its proposed step is smaller
STEP_TOL = 1e-10
#: relative size of a negative discriminant still polished as a possible pair of close intersections
NEAR_TANGENT = 1e-3
#: two exact solutions closer than this fraction of the momentum scale are one (a tangent double root)
DUPLICATE_TOL = 1e-6
#: roots of the pencil's cubic closer than this (relative) are left to LAPACK
EIGEN_TOL = 1e-6

Mass = float | np.ndarray


@dataclass(frozen=True)
class NeutrinoSolutions:
    """Up to 4 exact (nu, nubar) solutions per event, valid ones first, NaN in unused slots."""

    nu: np.ndarray  # (n, 4, 3) px, py, pz
    nubar: np.ndarray  # (n, 4, 3)
    valid: np.ndarray  # (n, 4) bool
    exact: np.ndarray  # (n,) bool: at least one solution


@dataclass(frozen=True)
class NearestApproach:
    """Neutrinos minimising the MET mismatch, for events without an exact solution; NaN without ellipses."""

    nu: np.ndarray  # (n, 3)
    nubar: np.ndarray  # (n, 3)
    residual: np.ndarray  # (n,) |MET - nu_T - nubar_T| in GeV


@dataclass(frozen=True)
class EllipseResult:
    """m_tt of the ellipse method per event, with how it was obtained (see SOLUTION_RULE)."""

    m_tt: np.ndarray  # (n,) float64, NaN where nothing could be reconstructed
    exact: np.ndarray  # (n,) bool: m_tt from an exact solution
    pairing: np.ndarray  # (n,) int: 0 b1-l+/b2-l-, 1 swapped, -1 none
    n_solutions: np.ndarray  # (n,) int: exact solutions of both pairings together (0..8)
    met_residual: np.ndarray  # (n,) GeV: 0 for exact, the nearest-approach mismatch otherwise, NaN if none
    degenerate: np.ndarray  # (n,) bool: from the nearest approach with ellipses shrunk to points (Z^2 <= 0)


# ---------------------------------------------------------------------------------------------------------
# small helpers


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dot product over the last axis."""
    return sum(a[..., i] * b[..., i] for i in range(a.shape[-1]))


def _per_event(m: Mass, n: int) -> np.ndarray:
    """A scalar or (n,) mass as a contiguous float64 (n,) array."""
    return np.ascontiguousarray(np.broadcast_to(np.asarray(m, dtype=np.float64), (n,)))


def _norm(p: np.ndarray) -> np.ndarray:
    """Euclidean norm over the last axis (np.linalg.norm's sum of squares, without its overhead)."""
    return np.sqrt(_dot(p, p))


def _four_vectors(*p: np.ndarray) -> list[np.ndarray]:
    """(n, 4) float64 C-contiguous copies where needed: the layout the compiled kernels take."""
    return [np.ascontiguousarray(x, dtype=np.float64) for x in p]


# ---------------------------------------------------------------------------------------------------------
# step 1: the neutrino ellipse of one (b, l) pair


def neutrino_ellipse(b: np.ndarray, lep: np.ndarray, m_w: Mass = M_W, m_t: Mass = M_T,
                     m_nu: Mass = 0.0, clamp: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(H, ok): p_nu = H (cos t, sin t, 1) solves the W, top and nu mass constraints of t -> b l nu; NaN if not ok.

    In the frame with the lepton along x and the b in the x-y plane, the W constraint gives E_nu = beta_l x - x0
    and, with the top constraint, the plane y = omega x + k; on the nu mass shell this is the ellipse
    Omega^2 (x - x1)^2 + z^2 = Z^2, which exists only for Z^2 > 0. With `clamp`, Z^2 <= 0 is set to 0 (as the
    paper's reference code does): the ellipse shrinks to the single point closest to satisfying the constraints.
    """
    b, lep = _four_vectors(b, lep)
    n = len(b)
    return kernels.ellipses(b, lep, _per_event(m_w, n), _per_event(m_t, n), _per_event(m_nu, n), clamp)


def _on_ellipse(h: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Momenta (n, k, 3) at ellipse parameters t (n, k)."""
    cos, sin = np.cos(t), np.sin(t)
    return np.stack([h[:, i, :1] * cos + h[:, i, 1:2] * sin + h[:, i, 2:] for i in range(3)], axis=-1)


# ---------------------------------------------------------------------------------------------------------
# step 2: exact solutions


def _cubic_coefficients(m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, c) of the characteristic polynomial mu^3 + a mu^2 + b mu + c of (n, 3, 3) matrices."""
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = (m[:, i, j] for i in range(3) for j in range(3))
    a = -(m00 + m11 + m22)
    b = m00 * m11 - m01 * m10 + m00 * m22 - m02 * m20 + m11 * m22 - m12 * m21
    c = -(m00 * (m11 * m22 - m12 * m21) - m01 * (m10 * m22 - m12 * m20) + m02 * (m10 * m21 - m11 * m20))
    return a, b, c


def _largest_real_root(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Real root of largest magnitude of mu^3 + a mu^2 + b mu + c, and where it is ill-conditioned.

    Closed form (Cardano with one real root, the trigonometric form with three) and two Newton steps on the
    polynomial. Ill-conditioned: roots of nearly equal magnitude (which one LAPACK would take is round-off),
    a complex pair with an imaginary part of round-off size, a discriminant of round-off size.
    """
    shift = -a / 3
    p = b - a * a / 3
    q = (2 * a * a * a - 9 * a * b) / 27 + c
    disc = (q / 2) ** 2 + (p / 3) ** 3  # > 0: one real root and a complex pair
    big = -np.sign(q) * np.cbrt(np.abs(q) / 2 + np.sqrt(np.maximum(disc, 0.0)))
    small = -p / (3 * np.where(big != 0, big, 1.0)) * (big != 0)
    one, pair_re, pair_im = big + small + shift, shift - (big + small) / 2, np.sqrt(3) / 2 * np.abs(big - small)
    pair_mag = np.hypot(pair_re, pair_im)
    radius = 2 * np.sqrt(np.maximum(-p / 3, 0.0))
    phi = np.arccos(np.clip(3 * q / np.where(p * radius != 0, p * radius, 1.0), -1.0, 1.0)) / 3
    three = radius[:, None] * np.cos(phi[:, None] - 2 * np.pi / 3 * np.arange(3)) + shift[:, None]
    mags = np.abs(three)
    order = np.argsort(mags, axis=1)
    top, second = (np.take_along_axis(mags, order[:, k:k + 1], axis=1)[:, 0] for k in (2, 1))
    mu = np.where(disc > 0, one, np.take_along_axis(three, order[:, 2:], axis=1)[:, 0])
    for _ in range(2):
        f, slope = ((mu + a) * mu + b) * mu + c, (3 * mu + 2 * a) * mu + b
        mu = np.where(slope != 0, mu - f / np.where(slope != 0, slope, 1.0), mu)
    largest = np.maximum(np.abs(one), pair_mag)
    hard_one = (pair_im <= EIGEN_TOL * largest) | (np.abs(pair_mag - np.abs(one)) <= EIGEN_TOL * largest)
    hard = np.where(disc > 0, hard_one, top - second <= EIGEN_TOL * top)
    hard |= np.abs(disc) <= EIGEN_TOL * ((q / 2) ** 2 + np.abs(p / 3) ** 3)
    return mu, hard | ~np.isfinite(mu)


def _real_eigenvalue(m: np.ndarray) -> np.ndarray:
    """The real eigenvalue of largest magnitude (n,) of real (n, 3, 3) matrices (one always exists).

    The largest one gives the best-conditioned degenerate conic: with thin ellipses the pencil also has tiny
    eigenvalues, known only to round-off, whose members are nearly double lines. Closed form where it is
    well-conditioned (~8x faster); LAPACK (np.linalg.eigvals, backward stable) for the few others, where a
    closed-form cubic alone lost events.
    """
    scale = np.abs(m.reshape(len(m), 9)).max(axis=1)
    scale = np.where(scale > 0, scale, 1.0)
    mu, hard = _largest_real_root(*_cubic_coefficients(m / scale[:, None, None]))
    mu *= scale
    if hard.any():
        mu[hard] = _eigvals_largest_real(m[hard])
    return mu


def _eigvals_largest_real(m: np.ndarray) -> np.ndarray:
    """The real eigenvalue of largest magnitude by batched LAPACK."""
    mu = np.linalg.eigvals(m)
    real = np.abs(mu.imag) <= 1e-9 * np.abs(mu).max(axis=1, keepdims=True)
    real[~real.any(axis=1), :] = True  # round-off made all complex: take the largest anyway
    pick = np.argmax(np.where(real, np.abs(mu), -1.0), axis=1)
    return np.take_along_axis(mu.real, pick[:, None], axis=1)[:, 0]


def _angles(a: np.ndarray, c: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Ellipse parameters t (n, k) of transverse points (n, k, 2) on {A u(t) + c}: u = A^-1 (x - c)."""
    sign = np.sign(a[:, 0, 0] * a[:, 1, 1] - a[:, 0, 1] * a[:, 1, 0])[:, None]
    dx, dy = points[..., 0] - c[:, :1], points[..., 1] - c[:, 1:]
    w0 = (a[:, 1, 1, None] * dx - a[:, 0, 1, None] * dy) * sign
    w1 = (-a[:, 1, 0, None] * dx + a[:, 0, 0, None] * dy) * sign
    return np.arctan2(w1, w0)


def _intersections(h1: np.ndarray, h2: np.ndarray, met: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """nu and nubar momenta (n, 4, 3) of the exact solutions, valid ones first, and which are valid (n, 4).

    The conics' pencil has a real degenerate member det(q2) q1 - mu q2 for a real eigenvalue mu of
    adj(q2) q1 (adj(q2) = det(q2) q2^-1 avoids dividing); it contains every real intersection: with 4 real
    intersections all 3 members are real line pairs, with 2 only one member is real. Its lines are cut with the
    nu conic, and each point is polished on the two ellipse parameters.
    """
    q1, q2, finite, m = kernels.pencils(h1, h2, met)
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = _real_eigenvalue(m)
    points, ok = kernels.candidates(q1, q2, mu, finite, NEAR_TANGENT)
    c1, c2 = h1[:, :2, 2], h2[:, :2, 2]
    t1, t2 = _angles(h1[:, :2, :2], c1, points), _angles(h2[:, :2, :2], c2, met[:, None, :] - points)
    return kernels.polish(h1, h2, np.ascontiguousarray(met - c1 - c2), t1, t2, ok,
                          (POLISH_STEPS, POLISH_DAMPING, STEP_TOL), (POLISH_TOL, EXACT_TOL, DUPLICATE_TOL))


def _solve(h1: np.ndarray, ok1: np.ndarray, h2: np.ndarray, ok2: np.ndarray, met: np.ndarray) -> NeutrinoSolutions:
    """Exact solutions from the two ellipses of each event (events with both ellipses only)."""
    n = len(met)
    nu, nubar = np.full((n, 4, 3), np.nan), np.full((n, 4, 3), np.nan)
    valid = np.zeros((n, 4), dtype=bool)
    sel = np.flatnonzero(ok1 & ok2 & np.isfinite(met).all(axis=1))
    if sel.size:
        nu[sel], nubar[sel], valid[sel] = _intersections(h1[sel], h2[sel], met[sel])
    return NeutrinoSolutions(nu=nu, nubar=nubar, valid=valid, exact=valid.any(axis=1))


def _met(met_x: np.ndarray, met_y: np.ndarray, n: int) -> np.ndarray:
    """MET as (n, 2) float64."""
    return np.stack([_per_event(met_x, n), _per_event(met_y, n)], axis=1)


def _ellipse_pair(b: np.ndarray, lplus: np.ndarray, bbar: np.ndarray, lminus: np.ndarray, m_w: Mass, m_t: Mass,
                  m_nu: Mass, m_w_bar: Mass | None, m_t_bar: Mass | None) -> tuple[np.ndarray, ...]:
    """The nu and nubar ellipses (H1, ok1, H2, ok2); the antitop side takes m_w / m_t unless given its own."""
    b, lplus, bbar, lminus = (np.asarray(p, dtype=np.float64) for p in (b, lplus, bbar, lminus))
    h1, ok1 = neutrino_ellipse(b, lplus, m_w, m_t, m_nu)
    h2, ok2 = neutrino_ellipse(bbar, lminus, m_w if m_w_bar is None else m_w_bar, m_t if m_t_bar is None else m_t_bar,
                               m_nu)
    return h1, ok1, h2, ok2


def solve_neutrinos(b: np.ndarray, lplus: np.ndarray, bbar: np.ndarray, lminus: np.ndarray, met_x: np.ndarray,
                    met_y: np.ndarray, m_w: Mass = M_W, m_t: Mass = M_T, m_nu: Mass = 0.0, *,
                    m_w_bar: Mass | None = None, m_t_bar: Mass | None = None) -> NeutrinoSolutions:
    """Exact (nu, nubar) solutions of t -> b l+ nu, tbar -> bbar l- nubar with the MET constraint.

    m_w, m_t (scalars or (n,)) apply to both sides unless m_w_bar / m_t_bar give the antitop side its own.
    """
    h1, ok1, h2, ok2 = _ellipse_pair(b, lplus, bbar, lminus, m_w, m_t, m_nu, m_w_bar, m_t_bar)
    return _solve(h1, ok1, h2, ok2, _met(met_x, met_y, len(h1)))


# ---------------------------------------------------------------------------------------------------------
# step 3: nearest approach


def _minimise_mismatch(h1: np.ndarray, h2: np.ndarray, met: np.ndarray) -> tuple[np.ndarray, ...]:
    """(t1, t2, |r|) (n,) minimising |MET - nu_T(t1) - nubar_T(t2)|: two grid starts, then damped Newton."""
    a1, a2 = np.ascontiguousarray(h1[:, :2, :2]), np.ascontiguousarray(h2[:, :2, :2])
    target = np.ascontiguousarray(met - h1[:, :2, 2] - h2[:, :2, 2])
    grid = np.linspace(0.0, 2 * np.pi, GRID, endpoint=False)
    starts = kernels.grid_starts(a1, a2, target, np.cos(grid), np.sin(grid))
    return kernels.nearest(a1, a2, target, grid[starts // GRID], grid[starts % GRID],
                           (FALLBACK_STEPS, FALLBACK_DAMPING, STEP_TOL))


def _nearest(h1: np.ndarray, ok1: np.ndarray, h2: np.ndarray, ok2: np.ndarray, met: np.ndarray) -> NearestApproach:
    """Nearest approach for the events with both ellipses; NaN elsewhere."""
    n = len(met)
    nu, nubar, residual = np.full((n, 3), np.nan), np.full((n, 3), np.nan), np.full(n, np.nan)
    sel = np.flatnonzero(ok1 & ok2 & np.isfinite(met).all(axis=1))
    if sel.size:
        t1, t2, residual[sel] = _minimise_mismatch(h1[sel], h2[sel], met[sel])
        nu[sel] = _on_ellipse(h1[sel], t1[:, None])[:, 0]
        nubar[sel] = _on_ellipse(h2[sel], t2[:, None])[:, 0]
    return NearestApproach(nu=nu, nubar=nubar, residual=residual)


def nearest_neutrinos(b: np.ndarray, lplus: np.ndarray, bbar: np.ndarray, lminus: np.ndarray, met_x: np.ndarray,
                      met_y: np.ndarray, m_w: Mass = M_W, m_t: Mass = M_T, m_nu: Mass = 0.0, *,
                      m_w_bar: Mass | None = None, m_t_bar: Mass | None = None) -> NearestApproach:
    """Neutrinos on their ellipses closest to the MET constraint: the fallback when no exact solution exists."""
    h1, ok1, h2, ok2 = _ellipse_pair(b, lplus, bbar, lminus, m_w, m_t, m_nu, m_w_bar, m_t_bar)
    return _nearest(h1, ok1, h2, ok2, _met(met_x, met_y, len(h1)))


# ---------------------------------------------------------------------------------------------------------
# m_tt


def _mtt(b: np.ndarray, lplus: np.ndarray, nu: np.ndarray, bbar: np.ndarray, lminus: np.ndarray,
         nubar: np.ndarray) -> np.ndarray:
    """m(b l+ nu + bbar l- nubar) for neutrinos (n, k, 3) (massless), shape (n, k).

    By components, as `vector` computes it (its mass keeps the sign of m^2), without building vector arrays.
    """
    visible = (b + lplus + bbar + lminus)[:, None, :]
    p = visible[..., :3] + (nu + nubar)
    energy = visible[..., 3] + (_norm(nu) + _norm(nubar))
    m2 = energy**2 - (p[..., 0] ** 2 + p[..., 1] ** 2 + p[..., 2] ** 2)
    return np.copysign(np.sqrt(np.abs(m2)), m2)


def _reconstruct_chunk(lplus: np.ndarray, lminus: np.ndarray, b1: np.ndarray, b2: np.ndarray, met: np.ndarray,
                       m_w: np.ndarray, m_t: np.ndarray, clamp: bool = True, shrink: bool = False,
                       both_pairings: bool = True) -> EllipseResult:
    """`reconstruct_mtt` on one chunk; `shrink` builds the ellipses with Z^2 clamped at 0."""
    n = len(met)
    pairings = [(b1, b2), (b2, b1)] if both_pairings else [(b1, b2)]
    ellipses = [neutrino_ellipse(b, lplus, m_w, m_t, clamp=shrink) + neutrino_ellipse(bbar, lminus, m_w, m_t,
                                                                                       clamp=shrink)
                for b, bbar in pairings]
    sols = [_solve(*ell, met) for ell in ellipses]
    with np.errstate(invalid="ignore"):
        masses = np.concatenate([_mtt(b, lplus, s.nu, bbar, lminus, s.nubar)
                                 for (b, bbar), s in zip(pairings, sols, strict=True)], axis=1)
    valid = np.concatenate([s.valid for s in sols], axis=1)
    best = np.argmin(np.where(valid, masses, np.inf), axis=1)
    exact = valid.any(axis=1)
    m_tt = np.where(exact, masses[np.arange(n), best], np.nan)
    pairing = np.where(exact, best // 4, -1)
    residual = np.where(exact, 0.0, np.nan)
    todo = np.flatnonzero(~exact)
    if todo.size:
        near = [_nearest(h1[todo], ok1[todo], h2[todo], ok2[todo], met[todo]) for h1, ok1, h2, ok2 in ellipses]
        res = np.stack([np.where(np.isnan(x.residual), np.inf, x.residual) for x in near], axis=1)
        pick = np.argmin(res, axis=1)
        found = np.isfinite(res[np.arange(todo.size), pick])
        nu = np.where((pick == 0)[:, None], near[0].nu, near[-1].nu)
        nubar = np.where((pick == 0)[:, None], near[0].nubar, near[-1].nubar)
        b = np.where((pick == 0)[:, None], b1[todo], b2[todo])
        bbar = np.where((pick == 0)[:, None], b2[todo], b1[todo])
        with np.errstate(invalid="ignore"):
            m_fallback = _mtt(b, lplus[todo], nu[:, None], bbar, lminus[todo], nubar[:, None])[:, 0]
        m_tt[todo] = np.where(found, m_fallback, np.nan)
        pairing[todo] = np.where(found, pick, -1)
        residual[todo] = np.where(found, res[np.arange(todo.size), pick], np.nan)
    degenerate = np.zeros(n, bool)
    left = np.flatnonzero(np.isnan(m_tt))
    if clamp and left.size:
        clamped = _reconstruct_chunk(lplus[left], lminus[left], b1[left], b2[left], met[left], m_w[left], m_t[left],
                                     clamp=False, shrink=True, both_pairings=both_pairings)
        m_tt[left], pairing[left], residual[left] = clamped.m_tt, clamped.pairing, clamped.met_residual
        degenerate[left] = np.isfinite(clamped.m_tt)
    return EllipseResult(m_tt=m_tt, exact=exact, pairing=pairing, n_solutions=valid.sum(axis=1),
                         met_residual=residual, degenerate=degenerate)


def reconstruct_mtt(lplus: np.ndarray, lminus: np.ndarray, b1: np.ndarray, b2: np.ndarray, met_x: np.ndarray,
                    met_y: np.ndarray, m_w: Mass = M_W, m_t: Mass = M_T, *, chunk_size: int = CHUNK,
                    clamp: bool = True, both_pairings: bool = True) -> EllipseResult:
    """m_tt by the ellipse method with both b-jet assignments, chosen by SOLUTION_RULE, in bounded chunks.

    With `clamp`, events where neither pairing has both ellipses are reconstructed once more with Z^2 clamped
    at 0 (nearest approach of the shrunken ellipses; `degenerate` marks them); without it they stay NaN.
    With `both_pairings` false only b1 with l+ (and b2 with l-) is tried: the answers of one pairing.
    """
    lplus, lminus, b1, b2 = (np.asarray(p, dtype=np.float64).reshape(-1, 4) for p in (lplus, lminus, b1, b2))
    n = len(lplus)
    met, m_w, m_t = _met(met_x, met_y, n), _per_event(m_w, n), _per_event(m_t, n)
    parts = [_reconstruct_chunk(lplus[s], lminus[s], b1[s], b2[s], met[s], m_w[s], m_t[s], clamp,
                                both_pairings=both_pairings)
             for s in (slice(i, i + chunk_size) for i in range(0, max(n, 1), chunk_size))]
    return EllipseResult(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(EllipseResult)})
