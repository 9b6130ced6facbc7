"""Write tiny, kinematically exact gg -> tt -> e+ nu b mu- nubar bbar LHE files for tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import vector

M_TOP, M_W, M_B = 173.0, 80.4, 4.8


def _two_body(parent: vector.MomentumObject4D, m1: float, m2: float, rng: np.random.Generator):
    """Isotropic two-body decay of `parent` in its rest frame, boosted to the lab."""
    mass = parent.mass
    p = np.sqrt((mass**2 - (m1 + m2) ** 2) * (mass**2 - (m1 - m2) ** 2)) / (2 * mass)
    cos_t, phi = rng.uniform(-1, 1), rng.uniform(-np.pi, np.pi)
    sin_t = np.sqrt(1 - cos_t**2)
    d = p * np.array([sin_t * np.cos(phi), sin_t * np.sin(phi), cos_t])
    a = vector.obj(px=d[0], py=d[1], pz=d[2], E=np.hypot(p, m1)).boost_p4(parent)
    b = vector.obj(px=-d[0], py=-d[1], pz=-d[2], E=np.hypot(p, m2)).boost_p4(parent)
    return a, b


def tt_dilepton_event(m_tt: float, pz_tt: float, rng: np.random.Generator) -> list[tuple]:
    """The 12 LHE particle lines (id, status, mothers, colours, p4, mass) of one event."""
    e_tt = np.hypot(m_tt, pz_tt)
    tt = vector.obj(px=0.0, py=0.0, pz=pz_tt, E=e_tt)
    top, antitop = _two_body(tt, M_TOP, M_TOP, rng)
    w_plus, b = _two_body(top, M_W, M_B, rng)
    w_minus, bbar = _two_body(antitop, M_W, M_B, rng)
    e_plus, nu = _two_body(w_plus, 0.0, 0.0, rng)
    mu_minus, nubar = _two_body(w_minus, 0.0, 0.0, rng)
    g1 = vector.obj(px=0.0, py=0.0, pz=(e_tt + pz_tt) / 2, E=(e_tt + pz_tt) / 2)
    g2 = vector.obj(px=0.0, py=0.0, pz=-(e_tt - pz_tt) / 2, E=(e_tt - pz_tt) / 2)
    return [
        (21, -1, 0, 0, 501, 502, g1, 0.0), (21, -1, 0, 0, 503, 501, g2, 0.0),
        (6, 2, 1, 2, 503, 0, top, M_TOP), (-6, 2, 1, 2, 0, 502, antitop, M_TOP),
        (24, 2, 3, 3, 0, 0, w_plus, M_W), (5, 1, 3, 3, 503, 0, b, M_B),
        (-24, 2, 4, 4, 0, 0, w_minus, M_W), (-5, 1, 4, 4, 0, 502, bbar, M_B),
        (-11, 1, 5, 5, 0, 0, e_plus, 0.0), (12, 1, 5, 5, 0, 0, nu, 0.0),
        (13, 1, 7, 7, 0, 0, mu_minus, 0.0), (-14, 1, 7, 7, 0, 0, nubar, 0.0),
    ]


def write_lhe(path: Path, m_tt_values: list[float], seed: int = 1, beam_energy: float = 6500.0) -> Path:
    """An LHE file with one event per requested m_tt (tt system along z)."""
    rng = np.random.default_rng(seed)
    lines = ['<LesHouchesEvents version="1.0">', "<header>", "written by tests/lhe_writer.py", "</header>",
             "<init>", f" 2212 2212 {beam_energy:.6E} {beam_energy:.6E} 0 0 10042 10042 3 1",
             " 1.000000E+01 1.000000E-01 1.000000E+00 1", "</init>"]
    for m_tt in m_tt_values:
        particles = tt_dilepton_event(m_tt, rng.uniform(-300, 300), rng)
        lines += ["<event>", f" {len(particles)} 1 1.000000E+00 1.730000E+02 7.812500E-03 1.180000E-01"]
        for pid, status, m1, m2, c1, c2, p, mass in particles:
            lines.append(f" {pid:4d} {status:3d} {m1} {m2} {c1} {c2} {p.px:.10E} {p.py:.10E} {p.pz:.10E} "
                         f"{p.E:.10E} {mass:.10E} 0. 9.")
        lines.append("</event>")
    lines.append("</LesHouchesEvents>")
    path.write_text("\n".join(lines) + "\n")
    return path
