"""Small kinematic helpers on flat numpy arrays, shared by the stages (four-vectors themselves use `vector`)."""

from __future__ import annotations

import numpy as np


def delta_phi(phi1: np.ndarray, phi2: np.ndarray) -> np.ndarray:
    """phi1 - phi2 wrapped into [-pi, pi)."""
    return np.mod(phi1 - phi2 + np.pi, 2 * np.pi) - np.pi


def delta_r(eta1: np.ndarray, phi1: np.ndarray, eta2: np.ndarray, phi2: np.ndarray) -> np.ndarray:
    """Angular distance sqrt(deta^2 + dphi^2)."""
    return np.hypot(eta1 - eta2, delta_phi(phi1, phi2))


def cartesian(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """(n, 4) px, py, pz, E from pT, eta, phi and E: what the ellipse method takes."""
    pt, eta, phi = (np.asarray(v, dtype=np.float64) for v in (pt, eta, phi))
    return np.column_stack([pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), np.asarray(energy, np.float64)])
