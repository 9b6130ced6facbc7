"""Small kinematic helpers on flat numpy arrays, shared by the stages (four-vectors themselves use `vector`)."""

from __future__ import annotations

import numpy as np


def delta_phi(phi1: np.ndarray, phi2: np.ndarray) -> np.ndarray:
    """phi1 - phi2 wrapped into [-pi, pi)."""
    return np.mod(phi1 - phi2 + np.pi, 2 * np.pi) - np.pi


def delta_r(eta1: np.ndarray, phi1: np.ndarray, eta2: np.ndarray, phi2: np.ndarray) -> np.ndarray:
    """Angular distance sqrt(deta^2 + dphi^2)."""
    return np.hypot(eta1 - eta2, delta_phi(phi1, phi2))
