"""Compiled per-event loops of the ellipse method (`mtt.core.reco.ellipse`), with numba.

Each kernel does, event by event, what the vectorised numpy solver before it did on whole arrays, in the same
floating-point operations and order, so the answers are the same to the bit (`tests/core/reco/
test_ellipse_frozen.py` holds them against the frozen answers of that solver):

- sums of products are written left to right and never contracted (`fastmath` off);
- where numpy multiplied small matrices (`@`, i.e. a BLAS call per matrix), the kernel uses the fused
  multiply-add chain that BLAS uses (`_fma3`): the nearest approach resolves its minimum only to ~sqrt(eps),
  so one ulp in an ellipse matrix moves a fallback m_tt by ~1e-9;
- `np.arctan2` and the pencil's eigenvalue stay in numpy (`ellipse.py`): numba's versions round differently.

Compiled once and cached next to this file (`cache=True`): the first call in a fresh checkout compiles for
~10 s, later processes load the machine code in ~0.1 s.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic


def _njit(func):  # noqa: ANN001, ANN202 - numba kernels are typed by their callers' arrays
    """numba.njit, cached, with IEEE arithmetic (no fastmath) and numpy's division (x / 0 is inf, not an error)."""
    return numba.njit(cache=True, fastmath=False, nogil=True, error_model="numpy")(func)


@intrinsic
def fma(typingctx, a, b, c):  # noqa: ANN001, ANN201, ARG001 - numba's intrinsic signature
    """a * b + c rounded once (LLVM's llvm.fma.f64): the rounding of BLAS's small matrix products."""
    signature = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, sig, args):  # noqa: ANN001, ANN202, ARG001
        double = ir.DoubleType()
        fn = builder.module.declare_intrinsic("llvm.fma", [double], ir.FunctionType(double, [double] * 3))
        return builder.call(fn, args)

    return signature, codegen


@_njit
def _fma3(a0, b0, a1, b1, a2, b2):
    """a0 b0 + a1 b1 + a2 b2 as BLAS's matrix product sums it: fused, left to right, from +0."""
    return fma(a2, b2, fma(a1, b1, fma(a0, b0, 0.0)))


@_njit
def _fma2(a0, b0, a1, b1):
    """a0 b0 + a1 b1, fused, left to right, from +0."""
    return fma(a1, b1, fma(a0, b0, 0.0))


@_njit
def _norm3(x, y, z):
    """Euclidean norm, squares summed left to right."""
    return math.sqrt(x * x + y * y + z * z)


# --- step 1: the neutrino ellipses ---------------------------------------------------------------------


@_njit
def _ellipse(b, lep, m_w, m_t, m_nu, clamp, h):
    """H (3, 3) of one (b, l) pair into h, NaN where no ellipse exists; returns whether it exists."""
    mom_b, mom_l = _norm3(b[0], b[1], b[2]), _norm3(lep[0], lep[1], lep[2])
    e1x, e1y, e1z = lep[0] / mom_l, lep[1] / mom_l, lep[2] / mom_l
    cos = (b[0] * e1x + b[1] * e1y + b[2] * e1z) / mom_b
    px, py, pz = b[0] / mom_b - cos * e1x, b[1] / mom_b - cos * e1y, b[2] / mom_b - cos * e1z
    sin = _norm3(px, py, pz)
    e2x, e2y, e2z = px / sin, py / sin, pz / sin
    e3x, e3y, e3z = e1y * e2z - e1z * e2y, e1z * e2x - e1x * e2z, e1x * e2y - e1y * e2x
    e_b, e_l = b[3], lep[3]
    beta_b, beta_l = mom_b / e_b, mom_l / e_l
    x0 = -(m_w**2 - (e_l**2 - mom_l**2) - m_nu**2) / (2 * e_l)
    x0p = -(m_t**2 - m_w**2 - (e_b**2 - mom_b**2)) / (2 * e_b)
    omega = (beta_l / beta_b - cos) / sin
    k = ((e_l - x0 + x0p) / beta_b - cos * mom_l) / sin
    omega2 = omega**2 + 1 - beta_l**2
    x1 = -(beta_l * x0 + omega * k) / omega2
    z2 = x1**2 * omega2 - k**2 - m_nu**2 + x0**2
    z = math.sqrt(z2 if z2 > 0 else 0.0)
    z_over_omega = z / math.sqrt(omega2)
    # H = R H~ with R's columns e1, e2, e3 and H~ = ((z/Omega, 0, x1), (omega z/Omega, 0, omega x1 + k), (0, z, 0))
    t0, t1, t2 = (z_over_omega, 0.0, x1), (omega * z_over_omega, 0.0, omega * x1 + k), (0.0, z, 0.0)
    rows = ((e1x, e2x, e3x), (e1y, e2y, e3y), (e1z, e2z, e3z))
    ok = z2 > 0 or (clamp and math.isfinite(z2))
    for i in range(3):
        for j in range(3):
            h[i, j] = _fma3(rows[i][0], t0[j], rows[i][1], t1[j], rows[i][2], t2[j])
            ok = ok and math.isfinite(h[i, j])
    if not ok:
        h[:, :] = np.nan
    return ok


@_njit
def ellipses(b, lep, m_w, m_t, m_nu, clamp):
    """The ellipse matrices H (n, 3, 3) of n (b, l) pairs and which exist (n,); masses are (n,) arrays."""
    n = len(b)
    h, ok = np.empty((n, 3, 3)), np.empty(n, dtype=np.bool_)
    for e in range(n):
        ok[e] = _ellipse(b[e], lep[e], m_w[e], m_t[e], m_nu[e], clamp, h[e])
    return h, ok


# --- step 2: exact solutions -----------------------------------------------------------------------------


@_njit
def _conic(a00, a01, a10, a11, c0, c1, q):
    """Conic X^T q X = 0 (unit Frobenius norm) of the ellipse {A u + c : |u| = 1} into q (3, 3).

    With K = adj(A) and v = -K c: q = ((K^T K, K^T v), (v^T K, |v|^2 - det(A)^2)).
    """
    det = a00 * a11 - a01 * a10
    k00, k01, k10, k11 = a11, -a01, -a10, a00
    v0, v1 = -fma(k00, c0, fma(k01, c1, 0.0)), -fma(k10, c0, fma(k11, c1, 0.0))  # BLAS's matrix-vector order
    q[0, 0], q[0, 1] = _fma2(k00, k00, k10, k10), _fma2(k00, k01, k10, k11)
    q[1, 0], q[1, 1] = _fma2(k01, k00, k11, k10), _fma2(k01, k01, k11, k11)
    q[0, 2] = q[2, 0] = _fma2(k00, v0, k10, v1)
    q[1, 2] = q[2, 1] = _fma2(k01, v0, k11, v1)
    q[2, 2] = (v0 * v0 + v1 * v1) - det**2
    norm = math.sqrt(_sum9_squares(q))
    for i in range(3):
        for j in range(3):
            q[i, j] = q[i, j] / norm


@_njit
def _sum9_squares(m):
    """Sum of the squares of a 3x3 matrix in numpy's pairwise order (8 partial sums, then the ninth term)."""
    s = (m[0, 0] * m[0, 0], m[0, 1] * m[0, 1], m[0, 2] * m[0, 2], m[1, 0] * m[1, 0], m[1, 1] * m[1, 1],
         m[1, 2] * m[1, 2], m[2, 0] * m[2, 0], m[2, 1] * m[2, 1], m[2, 2] * m[2, 2])
    return (((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]))) + s[8]


@_njit
def _first_largest(x0, x1, x2):
    """np.argmax(np.abs((x0, x1, x2))): the first maximum, or the first NaN."""
    a0, a1, a2 = abs(x0), abs(x1), abs(x2)
    if math.isnan(a0):
        return 0
    if math.isnan(a1):
        return 1
    if math.isnan(a2):
        return 2
    best = 1 if a1 > a0 else 0
    return 2 if a2 > max(a0, a1) else best


@_njit
def _adj3(m, out):
    """Adjugate det(M) M^-1 of a 3x3 matrix into out: its columns are the cross products of M's rows."""
    for col, (i, j) in enumerate(((1, 2), (2, 0), (0, 1))):
        out[0, col] = m[i, 1] * m[j, 2] - m[i, 2] * m[j, 1]
        out[1, col] = m[i, 2] * m[j, 0] - m[i, 0] * m[j, 2]
        out[2, col] = m[i, 0] * m[j, 1] - m[i, 1] * m[j, 0]


@_njit
def pencils(h1, h2, met):
    """The conics q1 (nu) and q2 (reflected nubar), identity where not finite, and adj(q2) q1 of each event.

    Returns q1, q2 (n, 3, 3), finite (n,), m (n, 3, 3): the pencil's degenerate members are det(q2) q1 - mu q2
    for the eigenvalues mu of m.
    """
    n = len(met)
    q1, q2, m = np.empty((n, 3, 3)), np.empty((n, 3, 3)), np.empty((n, 3, 3))
    finite, adj = np.empty(n, dtype=np.bool_), np.empty((3, 3))
    for e in range(n):
        _conic(h1[e, 0, 0], h1[e, 0, 1], h1[e, 1, 0], h1[e, 1, 1], h1[e, 0, 2], h1[e, 1, 2], q1[e])
        _conic(-h2[e, 0, 0], -h2[e, 0, 1], -h2[e, 1, 0], -h2[e, 1, 1], met[e, 0] - h2[e, 0, 2], met[e, 1] - h2[e, 1, 2],
               q2[e])  # nu_T = MET - nubar_T on the reflected nubar ellipse
        finite[e] = np.isfinite(q1[e]).all() and np.isfinite(q2[e]).all()  # e.g. MET NaN
        if not finite[e]:
            q1[e], q2[e] = np.eye(3), np.eye(3)
        _adj3(q2[e], adj)
        for i in range(3):
            for j in range(3):
                m[e, i, j] = _fma3(adj[i, 0], q1[e, 0, j], adj[i, 1], q1[e, 1, j], adj[i, 2], q1[e, 2, j])
    return q1, q2, finite, m


@_njit
def _argmax_abs(m):
    """np.argmax(np.abs(m)) of a 3x3 matrix, flat index: the first maximum, or the first NaN."""
    best, where = -1.0, 0
    for k in range(9):
        x = abs(m[k // 3, k % 3])
        if math.isnan(x):
            return k
        if x > best:
            best, where = x, k
    return where


@_njit
def _split_lines(d, adj, lines):
    """The two lines (2, 3) of a degenerate symmetric conic d into lines; returns whether they are real.

    For d = g h^T + h g^T, adj(d) = -p p^T with p = g x h the crossing point; d - [p]x = 2 g h^T has rank 1,
    and a row and a column of it are the lines (Richter-Gebert, Perspectives on Projective Geometry, 11.3).
    A double line (rank 1, adj(d) = 0) is d's largest diagonal column, taken twice.
    """
    _adj3(d, adj)
    i = _first_largest(adj[0, 0], adj[1, 1], adj[2, 2])
    b_ii = adj[i, i]
    rank1 = abs(b_ii) <= 1e-12 * _sum9_squares(d)
    real = b_ii <= 0 or rank1
    beta = math.sqrt(-b_ii if real and not rank1 else 1.0)
    p0, p1, p2 = adj[0, i] / beta, adj[1, i] / beta, adj[2, i] / beta
    if rank1:
        j = _first_largest(d[0, 0], d[1, 1], d[2, 2])
        for k in range(3):
            lines[0, k] = lines[1, k] = d[k, j]
        return real
    c = adj  # d - [p]x, in adj's place
    c[0, 0], c[0, 1], c[0, 2] = d[0, 0], d[0, 1] - -p2, d[0, 2] - p1
    c[1, 0], c[1, 1], c[1, 2] = d[1, 0] - p2, d[1, 1], d[1, 2] - -p0
    c[2, 0], c[2, 1], c[2, 2] = d[2, 0] - -p1, d[2, 1] - p0, d[2, 2]
    ij = _argmax_abs(c)
    for k in range(3):
        lines[0, k], lines[1, k] = c[ij // 3, k], c[k, ij % 3]
    return real


@_njit
def _line_conic(lines, q, near_tangent, xy, ok):
    """Intersections xy (4, 2) of the two lines with conic q, and which are real (ok (4,)).

    Line (a, b, c): X(s) = P + s D with P = (-a c, -b c, a^2 + b^2) and D = (-b, a, 0); X^T q X = 0 is a
    quadratic in s. Near a tangency (|discriminant| below `near_tangent` of its terms) the two points are taken
    at the real part -+ sqrt(|discriminant|): polishing decides.
    """
    for m in range(2):
        norm = _norm3(lines[m, 0], lines[m, 1], lines[m, 2])
        a, b, c = lines[m, 0] / norm, lines[m, 1] / norm, lines[m, 2] / norm
        r2 = a**2 + b**2
        point, direction = (-a * c, -b * c, r2), (-b, a, 0.0)
        qd = [_fma3(q[i, 0], direction[0], q[i, 1], direction[1], q[i, 2], direction[2]) for i in range(3)]
        qp = [_fma3(q[i, 0], point[0], q[i, 1], point[1], q[i, 2], point[2]) for i in range(3)]
        alpha = direction[0] * qd[0] + direction[1] * qd[1] + direction[2] * qd[2]
        beta = point[0] * qd[0] + point[1] * qd[1] + point[2] * qd[2]
        gamma = point[0] * qp[0] + point[1] * qp[1] + point[2] * qp[2]
        disc = beta**2 - alpha * gamma
        good = disc >= -near_tangent * (beta**2 + abs(alpha * gamma)) and r2 > 1e-12 and alpha != 0
        root = math.sqrt(abs(disc) if good else 0.0)
        alpha, div = (alpha, r2) if good else (1.0, 1.0)
        for k, s in enumerate(((-beta - root) / alpha, (-beta + root) / alpha)):
            xy[2 * m + k, 0] = (point[0] + s * direction[0]) / div
            xy[2 * m + k, 1] = (point[1] + s * direction[1]) / div
            ok[2 * m + k] = good


@_njit
def _det3(m):
    """Determinant of a 3x3 matrix: row 0 dotted with the cross product of rows 1 and 2."""
    x, y = m[1, 1] * m[2, 2] - m[1, 2] * m[2, 1], m[1, 2] * m[2, 0] - m[1, 0] * m[2, 2]
    return m[0, 0] * x + m[0, 1] * y + m[0, 2] * (m[1, 0] * m[2, 1] - m[1, 1] * m[2, 0])


@_njit
def candidates(q1, q2, mu, finite, near_tangent):
    """Transverse nu momenta (n, 4, 2) where the member det(q2) q1 - mu q2's lines meet q1, and which are real.

    Any real member contains all real intersections of the two conics; points not ok are (0, 0).
    """
    n = len(mu)
    xy, ok = np.zeros((n, 4, 2)), np.zeros((n, 4), dtype=np.bool_)
    lines, adj, d = np.empty((2, 3)), np.empty((3, 3)), np.empty((3, 3))
    for e in range(n):
        det = _det3(q2[e])
        for i in range(3):
            for j in range(3):
                d[i, j] = det * q1[e, i, j] - mu[e] * q2[e, i, j]
        real = _split_lines(d, adj, lines)
        _line_conic(lines, q1[e], near_tangent, xy[e], ok[e])
        for k in range(4):
            ok[e, k] = ok[e, k] and finite[e] and real and math.isfinite(xy[e, k, 0]) and math.isfinite(xy[e, k, 1])
            if not ok[e, k]:
                xy[e, k, 0] = xy[e, k, 1] = 0.0
    return xy, ok


# --- damped Newton on the MET mismatch (polishing and the nearest approach) ------------------------------


@_njit
def _residual(a1, a2, target, c1, s1, c2, s2):
    """r = target - A1 u(t1) - A2 u(t2), A1 u(t1) and A2 u(t2) from the cos and sin of t1, t2."""
    au1x, au1y = a1[0, 0] * c1 + a1[0, 1] * s1, a1[1, 0] * c1 + a1[1, 1] * s1
    au2x, au2y = a2[0, 0] * c2 + a2[0, 1] * s2, a2[1, 0] * c2 + a2[1, 1] * s2
    return target[0] - au1x - au2x, target[1] - au1y - au2y, au1x, au1y, au2x, au2y


@_njit
def _refine(a1, a2, target, x1, x2, stop, newton):
    """Damped Newton (Levenberg-Marquardt) on |r(t1, t2)|^2 from (x1, x2): (t1, t2, |r|).

    a1, a2: the (2, 2) transverse parts of the ellipses, target = MET - c1 - c2. Gradient J^T r and Hessian
    J^T J + diag(r . A1 u1, r . A2 u2) (d2r/dt2 = A u(t)). A step is kept only where it lowers |r|; the
    damping (relative to |A1|^2 + |A2|^2) shrinks after a good step and grows after a bad one, so steps near a
    singular Jacobian (thin ellipses, near tangencies) cannot run away. newton = (steps, initial damping,
    step_tol): stops after `steps`, once |r|^2 <= stop, or once the proposed step is below step_tol.
    """
    steps, damping, step_tol = newton
    c1, s1, c2, s2 = math.cos(x1), math.sin(x1), math.cos(x2), math.sin(x2)
    rx, ry, _, _, _, _ = _residual(a1, a2, target, c1, s1, c2, s2)
    cost = rx * rx + ry * ry
    size1 = a1[0, 0] ** 2 + a1[0, 1] ** 2 + a1[1, 0] ** 2 + a1[1, 1] ** 2
    size2 = a2[0, 0] ** 2 + a2[0, 1] ** 2 + a2[1, 0] ** 2 + a2[1, 1] ** 2
    lam = damping * (size1 + size2)
    moving = True
    for _ in range(steps):
        if not (cost > stop and moving):
            break
        rx, ry, au1x, au1y, au2x, au2y = _residual(a1, a2, target, c1, s1, c2, s2)
        j1x, j1y = a1[0, 0] * s1 - a1[0, 1] * c1, a1[1, 0] * s1 - a1[1, 1] * c1
        j2x, j2y = a2[0, 0] * s2 - a2[0, 1] * c2, a2[1, 0] * s2 - a2[1, 1] * c2
        g1, g2 = j1x * rx + j1y * ry, j2x * rx + j2y * ry
        h11 = (j1x * j1x + j1y * j1y) + (rx * au1x + ry * au1y) + lam
        h22 = (j2x * j2x + j2y * j2y) + (rx * au2x + ry * au2y) + lam
        h12 = j1x * j2x + j1y * j2y
        det = h11 * h22 - h12**2
        det = det if det != 0 else 1.0
        d1, d2 = (h22 * g1 - h12 * g2) / det, (h11 * g2 - h12 * g1) / det
        moving = max(abs(d1), abs(d2)) > step_tol and not (math.isnan(d1) or math.isnan(d2))
        n1, n2 = x1 - d1, x2 - d2
        nc1, ns1, nc2, ns2 = math.cos(n1), math.sin(n1), math.cos(n2), math.sin(n2)
        rx, ry, _, _, _, _ = _residual(a1, a2, target, nc1, ns1, nc2, ns2)
        new = rx * rx + ry * ry
        if new < cost:
            x1, x2, c1, s1, c2, s2, cost, lam = n1, n2, nc1, ns1, nc2, ns2, new, lam * 0.1
        else:
            lam = lam * 10.0
    return x1, x2, math.sqrt(cost)


@_njit
def _scale(a1, a2, target):
    """Momentum scale of an event's ellipse pair (|A1| + |A2| + |target|), for relative tolerances."""
    return (math.sqrt(a1[0, 0] * a1[0, 0] + a1[0, 1] * a1[0, 1] + a1[1, 0] * a1[1, 0] + a1[1, 1] * a1[1, 1])
            + math.sqrt(a2[0, 0] * a2[0, 0] + a2[0, 1] * a2[0, 1] + a2[1, 0] * a2[1, 0] + a2[1, 1] * a2[1, 1])
            + math.sqrt(target[0] * target[0] + target[1] * target[1]))


@_njit
def _on_ellipse(h, t, out):
    """Momentum (3,) on the ellipse H at parameter t into out."""
    c, s = math.cos(t), math.sin(t)
    for i in range(3):
        out[i] = h[i, 0] * c + h[i, 1] * s + h[i, 2]


@_njit
def _drop_duplicates(p, good, tol):
    """Unmark solutions (rows of p (4, 6): nu and nubar) repeating an earlier good one within tol."""
    dup = np.zeros(4, dtype=np.bool_)
    for j in range(1, 4):
        for i in range(j):
            d2 = 0.0
            for k in range(6):
                d2 += (p[j, k] - p[i, k]) ** 2
            dup[j] |= good[i] and math.sqrt(d2) < tol
    for j in range(4):
        good[j] = good[j] and not dup[j]


@_njit
def polish(h1, h2, target, t1, t2, ok, newton, tolerances):
    """Polish each candidate (t1, t2) (n, 4) by damped Newton; keep the exact, distinct ones, valid first.

    A candidate is exact when its MET mismatch is below exact_tol of the event's momentum scale; duplicates are
    compared in 3D (points close in the transverse plane can be far apart on an ellipse seen edge-on).
    newton: as `_refine`; tolerances = (polish_tol, exact_tol, duplicate_tol), relative to the momentum scale.
    Returns nu, nubar (n, 4, 3) (NaN in the unused slots) and valid (n, 4).
    """
    polish_tol, exact_tol, duplicate_tol = tolerances
    n = len(target)
    nu, nubar = np.full((n, 4, 3), np.nan), np.full((n, 4, 3), np.nan)
    valid, good, p = np.zeros((n, 4), dtype=np.bool_), np.zeros(4, dtype=np.bool_), np.empty((4, 6))
    for e in range(n):
        a1, a2, scale = h1[e, :2, :2], h2[e, :2, :2], _scale(h1[e, :2, :2], h2[e, :2, :2], target[e])
        for k in range(4):
            x1, x2, good[k] = t1[e, k], t2[e, k], False
            if ok[e, k]:
                x1, x2, res = _refine(a1, a2, target[e], x1, x2, (polish_tol * scale) ** 2, newton)
                good[k] = res <= exact_tol * scale
            _on_ellipse(h1[e], x1, p[k, :3])
            _on_ellipse(h2[e], x2, p[k, 3:])
        _drop_duplicates(p, good, duplicate_tol * scale)
        slot = 0
        for k in range(4):
            if good[k]:
                nu[e, slot], nubar[e, slot], valid[e, slot] = p[k, :3], p[k, 3:], True
                slot += 1
    return nu, nubar, valid


@_njit
def _argmin(f):
    """np.argmin of a flat array: the first minimum, or the first NaN."""
    best, where = f[0], 0
    if math.isnan(best):
        return 0
    for i in range(1, len(f)):
        if math.isnan(f[i]):
            return i
        if f[i] < best:
            best, where = f[i], i
    return where


@_njit
def grid_starts(a1, a2, target, cos, sin):
    """Flat grid indices (n, 2) of two nearest-approach starts on the (t1, t2) grid of the given cos and sin:
    the best grid point, and the best one more than 2 steps from it in t1 or in t2 (another basin).

    |target - A1 u(t1) - A2 u(t2)|^2 - |target|^2 = 2 p1.p2 + (|p1|^2 - 2 target.p1) + (|p2|^2 - 2 target.p2).
    """
    n, g = len(target), len(cos)
    starts = np.empty((n, 2), dtype=np.intp)
    f = np.empty(g * g)
    p1x, p1y, p2x, p2y, u1, u2 = np.empty(g), np.empty(g), np.empty(g), np.empty(g), np.empty(g), np.empty(g)
    for e in range(n):
        tx, ty = target[e, 0], target[e, 1]
        for i in range(g):
            p1x[i], p1y[i] = a1[e, 0, 0] * cos[i] + a1[e, 0, 1] * sin[i], a1[e, 1, 0] * cos[i] + a1[e, 1, 1] * sin[i]
            p2x[i], p2y[i] = a2[e, 0, 0] * cos[i] + a2[e, 0, 1] * sin[i], a2[e, 1, 0] * cos[i] + a2[e, 1, 1] * sin[i]
            u1[i] = p1x[i] * p1x[i] + p1y[i] * p1y[i] - 2 * (p1x[i] * tx + p1y[i] * ty)
            u2[i] = p2x[i] * p2x[i] + p2y[i] * p2y[i] - 2 * (p2x[i] * tx + p2y[i] * ty)
        for i in range(g):
            for j in range(g):
                f[i * g + j] = (p1x[i] * p2x[j] + p1y[i] * p2y[j]) * 2 + u1[i] + u2[j]
        first = _argmin(f)
        for di in range(-2, 3):
            for dj in range(-2, 3):
                f[((first // g + di) % g) * g + (first % g + dj) % g] = np.inf
        starts[e, 0], starts[e, 1] = first, _argmin(f)
    return starts


@_njit
def nearest(a1, a2, target, t1, t2, newton):
    """Damped Newton from each event's two starts (n, 2): the (t1, t2, |r|) (n,) of the better one."""
    n = len(target)
    o1, o2, res = np.empty(n), np.empty(n), np.empty(n)
    for e in range(n):
        x1, x2, r0 = _refine(a1[e], a2[e], target[e], t1[e, 0], t2[e, 0], 0.0, newton)
        y1, y2, r1 = _refine(a1[e], a2[e], target[e], t1[e, 1], t2[e, 1], 0.0, newton)
        second = not math.isnan(r0) and (math.isnan(r1) or r1 < r0)  # np.argmin: the first NaN, else the first minimum
        o1[e], o2[e], res[e] = (y1, y2, r1) if second else (x1, x2, r0)
    return o1, o2, res
