"""Ellipse method for the two neutrinos of dilepton ttbar (Betchart, Demina, Harel, NIM A 736 (2014) 169).

Vectorised over events with numpy, float64 throughout. Conventions: t -> b l+ nu, tbar -> bbar l- nubar;
four-vectors are (n, 4) arrays of (px, py, pz, E) in GeV.

Method (arXiv:1305.1878):

1. For one (b, l) pair, the W-mass, top-mass and neutrino-mass constraints leave the neutrino momentum on an
   ellipse p_nu = H (cos t, sin t, 1) (`neutrino_ellipse`). No ellipse exists where the pair cannot satisfy
   the constraints (e.g. m(b l) too large for m_t): such a pair has no solution.
2. MET fixes nubar_T = MET - nu_T, so nu_T lies on two conics of the transverse plane: the projection of the
   nu ellipse and the reflected projection of the nubar ellipse. Their (up to 4) intersections are the exact
   solutions (`solve_neutrinos`): a real degenerate member of the pencil of the two conics (a generalised
   eigenvalue, batched `np.linalg.eigvals` on (n, 3, 3) stacks) is split into two lines, each line is
   intersected with the nu conic, and each point is polished by damped Newton steps on the two ellipse
   parameters; a point is exact when its MET mismatch is below EXACT_TOL of the event's momentum scale.
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
#: events per block of the start grid (GRID^2 * 8 B * 128 = 590 kB: within a core's L2 cache)
GRID_BLOCK = 128
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
# small batched linear algebra


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dot product over the last axis."""
    return sum(a[..., i] * b[..., i] for i in range(a.shape[-1]))


def _per_event(m: Mass, n: int) -> np.ndarray:
    """A scalar or (n,) mass as a float64 (n,) array."""
    return np.broadcast_to(np.asarray(m, dtype=np.float64), (n,))


def _adj3(m: np.ndarray) -> np.ndarray:
    """Adjugate of (n, 3, 3) matrices: det(M) M^-1 without dividing, so singular matrices are fine."""
    r0, r1, r2 = m[:, 0], m[:, 1], m[:, 2]
    return np.swapaxes(np.stack([_cross(r1, r2), _cross(r2, r0), _cross(r0, r1)], axis=1), 1, 2)


def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Cross product of (n, 3) vectors (np.cross's arithmetic, without its overhead)."""
    return np.stack([u[:, 1] * v[:, 2] - u[:, 2] * v[:, 1], u[:, 2] * v[:, 0] - u[:, 0] * v[:, 2],
                     u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]], axis=-1)


def _det3(m: np.ndarray) -> np.ndarray:
    """Determinant of (n, 3, 3) matrices by the triple product (no LAPACK call, no singular-matrix error)."""
    return _dot(m[:, 0], _cross(m[:, 1], m[:, 2]))


def _adj2(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Adjugate and determinant of (n, 2, 2) matrices."""
    adj = np.stack([np.stack([a[:, 1, 1], -a[:, 0, 1]], -1), np.stack([-a[:, 1, 0], a[:, 0, 0]], -1)], 1)
    return adj, a[:, 0, 0] * a[:, 1, 1] - a[:, 0, 1] * a[:, 1, 0]


def _cross_matrix(p: np.ndarray) -> np.ndarray:
    """(n, 3, 3) matrices [p]x with [p]x v = p x v."""
    z = np.zeros_like(p[:, 0])
    return np.stack([np.stack([z, -p[:, 2], p[:, 1]], -1), np.stack([p[:, 2], z, -p[:, 0]], -1),
                     np.stack([-p[:, 1], p[:, 0], z], -1)], 1)


# ---------------------------------------------------------------------------------------------------------
# step 1: the neutrino ellipse of one (b, l) pair


def _lepton_frame(p_b: np.ndarray, p_l: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rotation from the frame with l along x and b in the x-y plane (y >= 0) to the lab, and cos, sin(b, l)."""
    mom_b, mom_l = _norm(p_b), _norm(p_l)
    e1 = p_l / mom_l[:, None]
    cos = _dot(p_b, e1) / mom_b
    perp = p_b / mom_b[:, None] - cos[:, None] * e1
    sin = _norm(perp)
    e2 = perp / sin[:, None]
    return np.stack([e1, e2, _cross(e1, e2)], axis=-1), cos, sin


def _norm(p: np.ndarray) -> np.ndarray:
    """Euclidean norm over the last axis (np.linalg.norm's sum of squares, without its overhead)."""
    return np.sqrt(_dot(p, p))


def neutrino_ellipse(b: np.ndarray, lep: np.ndarray, m_w: Mass = M_W, m_t: Mass = M_T,
                     m_nu: Mass = 0.0, clamp: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(H, ok): p_nu = H (cos t, sin t, 1) solves the W, top and nu mass constraints of t -> b l nu; NaN if not ok.

    In the frame with the lepton along x and the b in the x-y plane, the W constraint gives E_nu = beta_l x - x0
    and, with the top constraint, the plane y = omega x + k; on the nu mass shell this is the ellipse
    Omega^2 (x - x1)^2 + z^2 = Z^2, which exists only for Z^2 > 0. With `clamp`, Z^2 <= 0 is set to 0 (as the
    paper's reference code does): the ellipse shrinks to the single point closest to satisfying the constraints.
    """
    n = len(b)
    m_w, m_t, m_nu = (_per_event(m, n) for m in (m_w, m_t, m_nu))
    p_b, e_b, p_l, e_l = b[:, :3], b[:, 3], lep[:, :3], lep[:, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        rot, cos, sin = _lepton_frame(p_b, p_l)
        mom_b, mom_l = _norm(p_b), _norm(p_l)
        beta_b, beta_l = mom_b / e_b, mom_l / e_l
        x0 = -(m_w**2 - (e_l**2 - mom_l**2) - m_nu**2) / (2 * e_l)
        x0p = -(m_t**2 - m_w**2 - (e_b**2 - mom_b**2)) / (2 * e_b)
        omega = (beta_l / beta_b - cos) / sin
        k = ((e_l - x0 + x0p) / beta_b - cos * mom_l) / sin
        omega2 = omega**2 + 1 - beta_l**2
        x1 = -(beta_l * x0 + omega * k) / omega2
        z2 = x1**2 * omega2 - k**2 - m_nu**2 + x0**2
        z = np.sqrt(np.where(z2 > 0, z2, 0.0))
        z_over_omega = z / np.sqrt(omega2)
        h_tilde = np.zeros((n, 3, 3))
        h_tilde[:, 0, 0], h_tilde[:, 0, 2] = z_over_omega, x1
        h_tilde[:, 1, 0], h_tilde[:, 1, 2] = omega * z_over_omega, omega * x1 + k
        h_tilde[:, 2, 1] = z
        # kept a matmul: its (BLAS) rounding is the reference's, and the nearest approach resolves t only to
        # ~sqrt(eps), so one ulp here moves a fallback m_tt by ~1e-9
        h = rot @ h_tilde
    ok = ((z2 > 0) | (clamp & np.isfinite(z2))) & np.isfinite(h.reshape(n, 9)).all(axis=1)
    h[~ok] = np.nan
    return h, ok


def _on_ellipse(h: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Momenta (n, k, 3) at ellipse parameters t (n, k)."""
    cos, sin = np.cos(t), np.sin(t)
    return np.stack([h[:, i, :1] * cos + h[:, i, 1:2] * sin + h[:, i, 2:] for i in range(3)], axis=-1)


def _conic(a: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Conic X^T Q X = 0, X = (x, y, 1), of the ellipse {A u + c : |u| = 1}; unit Frobenius norm, no inverse.

    With K = adj(A) and v = -adj(A) c, |adj(A) (x - c)|^2 - det(A)^2 = 0 is det(A)^2 (|u|^2 - 1) = 0.
    Kept with matmuls: their rounding is the reference's (see `neutrino_ellipse`).
    """
    adj, det = _adj2(a)
    v = -(adj @ c[:, :, None])[:, :, 0]
    q = np.empty((len(a), 3, 3))
    q[:, :2, :2] = np.swapaxes(adj, 1, 2) @ adj
    q[:, :2, 2] = q[:, 2, :2] = (np.swapaxes(adj, 1, 2) @ v[:, :, None])[:, :, 0]
    q[:, 2, 2] = _dot(v, v) - det**2
    return q / np.linalg.norm(q, axis=(1, 2))[:, None, None]


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


def _degenerate_member(q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
    """A real degenerate conic det(q2) q1 - mu q2 of the pencil: mu a real eigenvalue of adj(q2) q1.

    Any real member contains all real intersections: with 4 real intersections all 3 members are real line
    pairs; with 2 real ones only one member is real, and it contains the line through the 2 real points; with
    none, no real member meets the conics in real points. adj(q2) = det(q2) q2^-1 avoids dividing.
    """
    mu = _real_eigenvalue(_adj3(q2) @ q1)
    return _det3(q2)[:, None, None] * q1 - mu[:, None, None] * q2


def _split_lines(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two lines (n, 2, 3) of a degenerate symmetric conic, and whether they are real.

    For d = g h^T + h g^T, adj(d) = -p p^T with p = g x h the crossing point; d - [p]x = 2 g h^T has rank 1,
    and a row and a column of it are the lines (Richter-Gebert, Perspectives on Projective Geometry, 11.3).
    A double line (rank 1, adj(d) = 0) is its largest column, taken twice.
    """
    n = len(d)
    rows = np.arange(n)
    b = _adj3(d)
    diag = np.diagonal(b, axis1=1, axis2=2)
    i = np.argmax(np.abs(diag), axis=1)
    b_ii = diag[rows, i]
    rank1 = np.abs(b_ii) <= 1e-12 * np.sum(d**2, axis=(1, 2))
    real = (b_ii <= 0) | rank1
    beta = np.sqrt(np.where(real & ~rank1, -b_ii, 1.0))
    c = d - _cross_matrix(b[rows, :, i] / beta[:, None])
    ij = np.argmax(np.abs(c).reshape(n, 9), axis=1)
    lines = np.stack([c[rows, ij // 3, :], c[rows, :, ij % 3]], axis=1)
    j = np.argmax(np.abs(np.diagonal(d, axis1=1, axis2=2)), axis=1)
    double = np.repeat(d[rows, :, j][:, None, :], 2, axis=1)
    return np.where(rank1[:, None, None], double, lines), real


def _line_conic(lines: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Intersections (n, 4, 2) of two lines each with conic q, and which are real.

    Line (a, b, c): X(s) = P + s D with P = (-a c, -b c, a^2 + b^2) on it and direction D = (-b, a, 0);
    X^T q X = 0 is a quadratic in s. Near a tangency (|discriminant| below NEAR_TANGENT of its terms) the two
    points are taken at the real part -+ sqrt(|discriminant|): with a thin ellipse two true intersections lie
    that close and round-off may give them a slightly negative discriminant; polishing decides.
    """
    lines = lines / np.linalg.norm(lines, axis=2, keepdims=True)
    a, b, c = lines[..., 0], lines[..., 1], lines[..., 2]
    r2 = a**2 + b**2
    point = np.stack([-a * c, -b * c, r2], axis=-1)
    direction = np.stack([-b, a, np.zeros_like(a)], axis=-1)
    qd, qp = np.swapaxes(q @ np.swapaxes(direction, 1, 2), 1, 2), np.swapaxes(q @ np.swapaxes(point, 1, 2), 1, 2)
    alpha, beta, gamma = _dot(direction, qd), _dot(point, qd), _dot(point, qp)
    disc = beta**2 - alpha * gamma
    ok = (disc >= -NEAR_TANGENT * (beta**2 + np.abs(alpha * gamma))) & (r2 > 1e-12) & (alpha != 0)
    root = np.sqrt(np.where(ok, np.abs(disc), 0.0))
    alpha = np.where(ok, alpha, 1.0)
    s = np.stack([(-beta - root) / alpha, (-beta + root) / alpha], axis=-1)  # (n, 2 lines, 2 roots)
    xy = (point[..., None, :2] + s[..., None] * direction[..., None, :2]) / np.where(ok, r2, 1.0)[..., None, None]
    return xy.reshape(len(q), 4, 2), np.repeat(ok, 2, axis=1)


def _angles(a: np.ndarray, c: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Ellipse parameters t (n, k) of transverse points (n, k, 2) on {A u(t) + c}: u = A^-1 (x - c)."""
    sign = np.sign(a[:, 0, 0] * a[:, 1, 1] - a[:, 0, 1] * a[:, 1, 0])[:, None]
    dx, dy = points[..., 0] - c[:, :1], points[..., 1] - c[:, 1:]
    w0 = (a[:, 1, 1, None] * dx - a[:, 0, 1, None] * dy) * sign
    w1 = (-a[:, 1, 0, None] * dx + a[:, 0, 0, None] * dy) * sign
    return np.arctan2(w1, w0)


def _dot2(u: tuple[np.ndarray, np.ndarray], v: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Dot product of 2-vectors stored as (x, y) component arrays."""
    return u[0] * v[0] + u[1] * v[1]


def _trig(t1: np.ndarray, t2: np.ndarray) -> np.ndarray:
    """(4, m) cos t1, sin t1, cos t2, sin t2: computed once per point, kept while a candidate stays there."""
    return np.stack([np.cos(t1), np.sin(t1), np.cos(t2), np.sin(t2)])


def _residual(a1: np.ndarray, a2: np.ndarray, target: np.ndarray,
              trig: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """r = target - A1 u(t1) - A2 u(t2) as an (x, y) pair, from `_trig` (the layout of `_mismatch`)."""
    cos1, sin1, cos2, sin2 = trig
    au1 = (a1[0] * cos1 + a1[1] * sin1, a1[2] * cos1 + a1[3] * sin1)
    au2 = (a2[0] * cos2 + a2[1] * sin2, a2[2] * cos2 + a2[3] * sin2)
    return target[0] - au1[0] - au2[0], target[1] - au1[1] - au2[1]


def _mismatch(a1: np.ndarray, a2: np.ndarray, target: np.ndarray,
              trig: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """r = target - A1 u(t1) - A2 u(t2), A1 u1, A2 u2 and the Jacobian columns dr/dt = -A u'(t), as (x, y) pairs.

    Component-first layout for speed: a1, a2 are (4, m) rows (A00, A01, A10, A11), target is (2, m).
    """
    cos1, sin1, cos2, sin2 = trig
    au1 = (a1[0] * cos1 + a1[1] * sin1, a1[2] * cos1 + a1[3] * sin1)
    au2 = (a2[0] * cos2 + a2[1] * sin2, a2[2] * cos2 + a2[3] * sin2)
    j1 = (a1[0] * sin1 - a1[1] * cos1, a1[2] * sin1 - a1[3] * cos1)
    j2 = (a2[0] * sin2 - a2[1] * cos2, a2[2] * sin2 - a2[3] * cos2)
    return (target[0] - au1[0] - au2[0], target[1] - au1[1] - au2[1]), au1, au2, j1, j2


def _refine(a1: np.ndarray, a2: np.ndarray, target: np.ndarray, t1: np.ndarray, t2: np.ndarray, steps: int,
            damping: float, stop: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Damped Newton (Levenberg-Marquardt) on |r(t1, t2)|^2 for m candidates; returns t1, t2, |r| (m,).

    a1, a2: (m, 2, 2) transverse parts of the ellipses, target: (m, 2) = MET - c1 - c2. Gradient J^T r and
    Hessian J^T J + diag(r . A1 u1, r . A2 u2) (d2r/dt2 = A u(t)). A step is kept only where it lowers |r|;
    the damping (relative to |A1|^2 + |A2|^2) shrinks after a good step and grows after a bad one, so steps
    near a singular Jacobian (thin ellipses, near tangencies) cannot run away. Candidates stop once
    |r|^2 <= stop or their proposed step is below STEP_TOL, so the few hard ones do not cost the easy ones.
    """
    a1, a2, target = a1.reshape(-1, 4).T, a2.reshape(-1, 4).T, target.T
    t1, t2 = t1.copy(), t2.copy()
    trig = _trig(t1, t2)
    r = _residual(a1, a2, target, trig)
    cost = _dot2(r, r)
    size = np.sum(a1**2, axis=0) + np.sum(a2**2, axis=0)
    lam = damping * size
    idx = np.arange(len(t1))
    moving = np.ones(len(t1), dtype=bool)
    for _ in range(steps):
        idx = idx[(cost[idx] > stop[idx]) & moving[idx]]
        if not idx.size:
            break
        b1, b2, tg, x1, x2, damp = a1[:, idx], a2[:, idx], target[:, idx], t1[idx], t2[idx], lam[idx]
        here = trig[:, idx]
        r, au1, au2, j1, j2 = _mismatch(b1, b2, tg, here)
        g1, g2 = _dot2(j1, r), _dot2(j2, r)
        h11, h22, h12 = _dot2(j1, j1) + _dot2(r, au1) + damp, _dot2(j2, j2) + _dot2(r, au2) + damp, _dot2(j1, j2)
        det = h11 * h22 - h12**2
        det = np.where(det != 0, det, 1.0)
        d1, d2 = (h22 * g1 - h12 * g2) / det, (h11 * g2 - h12 * g1) / det
        moving[idx] = np.maximum(np.abs(d1), np.abs(d2)) > STEP_TOL
        n1, n2 = x1 - d1, x2 - d2
        there = _trig(n1, n2)
        r = _residual(b1, b2, tg, there)
        new = _dot2(r, r)
        better = new < cost[idx]
        t1[idx], t2[idx] = np.where(better, n1, x1), np.where(better, n2, x2)
        trig[:, idx] = np.where(better, there, here)
        cost[idx] = np.where(better, new, cost[idx])
        lam[idx] = np.where(better, damp * 0.1, damp * 10.0)
    return t1, t2, np.sqrt(cost)


def _scale(a1: np.ndarray, a2: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Momentum scale (n,) of an event's ellipse pair, for relative tolerances."""
    return _norm(a1.reshape(-1, 4)) + _norm(a2.reshape(-1, 4)) + _norm(target)


def _duplicates(points: np.ndarray, good: np.ndarray, tol: np.ndarray) -> np.ndarray:
    """(n, k) mask of solutions repeating an earlier good one within tol (n,)."""
    k = points.shape[1]
    dup = np.zeros(good.shape, dtype=bool)
    for j in range(1, k):
        for i in range(j):
            dup[:, j] |= good[:, i] & (_norm(points[:, j] - points[:, i]) < tol)
    return dup


def _intersections(h1: np.ndarray, h2: np.ndarray, met: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """nu and nubar momenta (n, 4, 3) of the exact solutions and which are valid (n, 4), for existing ellipses."""
    a1, c1, a2, c2 = h1[:, :2, :2], h1[:, :2, 2], h2[:, :2, :2], h2[:, :2, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        q1 = _conic(a1, c1)
        q2 = _conic(-a2, met - c2)  # nu_T = MET - nubar_T on the reflected nubar ellipse
        finite = np.isfinite(q1).all(axis=(1, 2)) & np.isfinite(q2).all(axis=(1, 2))  # e.g. MET NaN
        q1, q2 = (np.where(finite[:, None, None], q, np.eye(3)) for q in (q1, q2))
        lines, real = _split_lines(_degenerate_member(q1, q2))
        points, ok = _line_conic(lines, q1)
    ok &= (finite & real)[:, None] & np.isfinite(points).all(axis=-1)
    points = np.where(ok[..., None], points, 0.0)
    target = met - c1 - c2
    scale = _scale(a1, a2, target)
    t1, t2 = _angles(a1, c1, points), _angles(a2, c2, met[:, None, :] - points)
    ev, slot = np.nonzero(ok)
    t1[ev, slot], t2[ev, slot], res = _refine(a1[ev], a2[ev], target[ev], t1[ev, slot], t2[ev, slot], POLISH_STEPS,
                                              POLISH_DAMPING, (POLISH_TOL * scale[ev]) ** 2)
    good = np.zeros_like(ok)
    good[ev, slot] = res <= EXACT_TOL * scale[ev]
    # compared in 3D: points close in the transverse plane can be far apart on an ellipse seen edge-on
    nu, nubar = _on_ellipse(h1, t1), _on_ellipse(h2, t2)
    good &= ~_duplicates(np.concatenate([nu, nubar], axis=-1), good, DUPLICATE_TOL * scale)
    return nu, nubar, good


def _solve(h1: np.ndarray, ok1: np.ndarray, h2: np.ndarray, ok2: np.ndarray, met: np.ndarray) -> NeutrinoSolutions:
    """Exact solutions from the two ellipses of each event (events with both ellipses only)."""
    n = len(met)
    nu, nubar = np.full((n, 4, 3), np.nan), np.full((n, 4, 3), np.nan)
    valid = np.zeros((n, 4), dtype=bool)
    sel = np.flatnonzero(ok1 & ok2 & np.isfinite(met).all(axis=1))
    if sel.size:
        p_nu, p_nubar, good = _intersections(h1[sel], h2[sel], met[sel])
        order = np.argsort(~good, axis=1, kind="stable")[..., None]  # valid solutions first
        good = np.take_along_axis(good[..., None], order, axis=1)
        nu[sel] = np.where(good, np.take_along_axis(p_nu, order, axis=1), np.nan)
        nubar[sel] = np.where(good, np.take_along_axis(p_nubar, order, axis=1), np.nan)
        valid[sel] = good[..., 0]
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


def _grid_mismatch(a1: np.ndarray, a2: np.ndarray, target: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """|target - A1 u(t1) - A2 u(t2)|^2 - |target|^2 (n, GRID^2) on the start grid, by components (no matmul)."""
    cos, sin = np.cos(grid), np.sin(grid)
    p1x, p1y = a1[:, 0, :1] * cos + a1[:, 0, 1:] * sin, a1[:, 1, :1] * cos + a1[:, 1, 1:] * sin
    p2x, p2y = a2[:, 0, :1] * cos + a2[:, 0, 1:] * sin, a2[:, 1, :1] * cos + a2[:, 1, 1:] * sin
    tx, ty = target[:, :1], target[:, 1:]
    # 2 p1.p2 + (|p1|^2 - 2 target.p1) + (|p2|^2 - 2 target.p2), in place
    f = p1x[:, :, None] * p2x[:, None, :]
    f += p1y[:, :, None] * p2y[:, None, :]
    f *= 2
    f += (p1x * p1x + p1y * p1y - 2 * (p1x * tx + p1y * ty))[:, :, None]
    f += (p2x * p2x + p2y * p2y - 2 * (p2x * tx + p2y * ty))[:, None, :]
    return f.reshape(len(f), -1)


def _grid_starts(a1: np.ndarray, a2: np.ndarray, target: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Flat grid indices (n, 2) of two starts: the best grid point, and the best more than 2 steps from it in t1
    or in t2 (another basin). In blocks of GRID_BLOCK events, so the (GRID^2) mismatches stay in cache."""
    starts = np.empty((len(a1), 2), dtype=np.intp)
    near = np.arange(-2, 3)
    for s in range(0, len(a1), GRID_BLOCK):
        f = _grid_mismatch(a1[s:s + GRID_BLOCK], a2[s:s + GRID_BLOCK], target[s:s + GRID_BLOCK], grid)
        first = np.argmin(f, axis=1)
        rows, cols = (first // GRID)[:, None, None] + near[:, None], (first % GRID)[:, None, None] + near
        f[np.arange(len(f))[:, None, None], (rows % GRID) * GRID + cols % GRID] = np.inf
        starts[s:s + GRID_BLOCK, 0], starts[s:s + GRID_BLOCK, 1] = first, np.argmin(f, axis=1)
    return starts


def _minimise_mismatch(h1: np.ndarray, h2: np.ndarray, met: np.ndarray) -> tuple[np.ndarray, ...]:
    """(t1, t2, |r|) (n,) minimising |MET - nu_T(t1) - nubar_T(t2)|: grid start, then damped Newton."""
    a1, c1, a2, c2 = h1[:, :2, :2], h1[:, :2, 2], h2[:, :2, :2], h2[:, :2, 2]
    target = met - c1 - c2
    grid = np.linspace(0.0, 2 * np.pi, GRID, endpoint=False)
    n = len(target)
    starts = _grid_starts(a1, a2, target, grid).ravel()
    ev = np.repeat(np.arange(n), 2)
    t1, t2, res = _refine(a1[ev], a2[ev], target[ev], grid[starts // GRID], grid[starts % GRID], FALLBACK_STEPS,
                          FALLBACK_DAMPING, np.zeros(len(ev)))
    pick = np.argmin(res.reshape(-1, 2), axis=1) + 2 * np.arange(n)
    return t1[pick], t2[pick], res[pick]


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
