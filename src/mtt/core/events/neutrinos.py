"""The truth neutrinos of simulated events: what the flow head is trained on (the `GenNu_*` / `GenAntinu_*`
branches that `mtt simulate` writes: the neutrino of the W+ -> l+ nu decay and the antineutrino of the W-).

Optional truth: a file from another generator (or CMS NanoAOD) has the tops but not these branches; prepare then
writes m_tt and the diagnostics without the neutrino columns, and the flow head refuses the data by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from mtt.core.dataset import NEUTRINOS
from mtt.core.errors import PrepareError

#: column prefix -> branch prefix (massless neutrinos: pt, eta, phi are all there is)
NEUTRINO_OBJECTS = {"nu": "GenNu", "antinu": "GenAntinu"}
NEUTRINO_BRANCHES = tuple(f"{branch}_{k}" for branch in NEUTRINO_OBJECTS.values() for k in ("pt", "eta", "phi"))


def has_neutrinos(tree: Any) -> bool:
    """True if every truth-neutrino branch is in the tree."""
    return all(branch in tree for branch in NEUTRINO_BRANCHES)


def neutrinos_in_all(files: list[Path], trees: list[Any]) -> bool:
    """Whether to write the neutrino columns: all files have them, or none; a mix is refused by name (a dataset
    whose neutrino columns exist for some events only would train the flow on part of the sample)."""
    present = [has_neutrinos(tree) for tree in trees]
    if all(present) or not any(present):
        return all(present)
    lacking = [str(path) for path, found in zip(files, present, strict=True) if not found]
    raise PrepareError(f"{lacking[0]} lacks the truth-neutrino branches {list(NEUTRINO_BRANCHES)} that "
                       f"{files[present.index(True)]} has ({len(lacking)} of {len(files)} files lack them): "
                       "prepare files from one generator together")


def neutrino_columns(arrays: ak.Array, energy_scale: float = 1.0) -> dict[str, np.ndarray]:
    """nu_px, nu_py, nu_pz, antinu_px, antinu_py, antinu_pz in GeV from the branches' pt, eta, phi."""
    out = {}
    for name, branch in NEUTRINO_OBJECTS.items():
        pt = ak.to_numpy(arrays[f"{branch}_pt"]).astype(np.float64) * energy_scale
        eta = ak.to_numpy(arrays[f"{branch}_eta"]).astype(np.float64)
        phi = ak.to_numpy(arrays[f"{branch}_phi"]).astype(np.float64)
        out.update({f"{name}_px": pt * np.cos(phi), f"{name}_py": pt * np.sin(phi), f"{name}_pz": pt * np.sinh(eta)})
    return {column: out[column].astype(np.float32) for column in NEUTRINOS}
