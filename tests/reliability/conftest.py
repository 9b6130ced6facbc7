"""Helpers for the hostile-user tests: copies of a prepared folder with one thing wrong."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mtt.core.dataset import METADATA_KEY, SPLITS

#: columns in GeV that an ATLAS-style file would hold in MeV
ENERGY_SUFFIXES = ("_pt", "_e", "_px", "_py")


def mev(frame: pd.DataFrame) -> pd.DataFrame:
    """The same events with every energy-like column in MeV (x1000), as float32."""
    frame = frame.copy()
    energy = [c for c in frame.columns if c.endswith(ENERGY_SUFFIXES) or c.startswith("m_") or c in ("ht", "m_vis")]
    frame[energy] = frame[energy] * np.float32(1000)
    return frame


def rewrite(prepared: Path, dest: Path, transform: Callable[[pd.DataFrame], pd.DataFrame],
            splits: tuple[str, ...] = SPLITS) -> Path:
    """A copy of a prepared folder (prepare's metadata kept) with `transform` applied to `splits`; the
    reference folder next to it is copied too, so train finds one."""
    dest.mkdir(parents=True)
    for split in SPLITS:
        source = prepared / f"{split}.parquet"
        if split not in splits:
            shutil.copy2(source, dest / source.name)
            continue
        metadata = pq.read_schema(source).metadata[METADATA_KEY]
        table = pa.Table.from_pandas(transform(pd.read_parquet(source)), preserve_index=False)
        pq.write_table(table.replace_schema_metadata({METADATA_KEY: metadata}), dest / source.name)
    if (prepared.parent / "reference").is_dir() and not (dest.parent / "reference").exists():
        shutil.copytree(prepared.parent / "reference", dest.parent / "reference")
    return dest


def temporary_outputs(root: Path) -> list[Path]:
    """Leftover temporary outputs (.<name>.<pid>.<random>.tmp / .old) anywhere under root."""
    return [p for p in root.rglob(".*") if p.name.endswith((".tmp", ".old"))]
