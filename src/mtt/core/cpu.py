"""The same floating-point bits on every x86-64 CPU with AVX2 and FMA, whatever newer instructions it has.

numpy, OpenBLAS, oneDNN (TensorFlow's matrix products) and Arrow pick their loops by the CPU's instruction set,
and the AVX-512 loops round differently from the AVX2 ones: numpy's AVX-512 `sinh`, `arctan2`, `cbrt`, `exp`,
`log` (its SVML loops), OpenBLAS's SkylakeX kernels, oneDNN's AVX-512 sgemm. The same params then gave other
prepared Parquet on an AVX-512 machine than on an AVX2 one (the same events, values rounded differently), hence
other DVC hashes and another trained model (found 2026-12-05).

`pin_arithmetic` caps every one of them at AVX2 (x86-64-v3) through their own environment variables, before
they load. The `mtt` command calls it first (`mtt.cli`), and every process it starts inherits it. A variable
already set is kept; `MTT_CPU_ARITHMETIC=native` leaves every library to its own choice (faster on AVX-512,
other bits). CPUs without AVX2 and FMA, and other architectures, are left as they are: their arithmetic is
theirs either way.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import MutableMapping
from pathlib import Path

#: `native`: no cap (each library uses the CPU's best instructions; the bits depend on the CPU); unset or
#: `x86-64-v3`: the caps
SWITCH = "MTT_CPU_ARITHMETIC"
#: each library's own cap at AVX2 (numpy 2.4's AVX-512 dispatch groups, OpenBLAS's kernel, oneDNN, Arrow)
PINS = {
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
    "OPENBLAS_CORETYPE": "Haswell",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "ARROW_USER_SIMD_LEVEL": "AVX2",
}
#: the CPU flags the cap needs (OpenBLAS's Haswell kernel uses both)
NEEDED_FLAGS = frozenset({"avx2", "fma"})
#: the run tag that says which arithmetic a run used
TAG = "mtt.cpu_arithmetic"


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The instruction-set flags of /proc/cpuinfo (empty where it cannot be read, e.g. not on Linux)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return frozenset()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def can_pin(machine: str | None = None, cpuinfo: str | None = None) -> bool:
    """Whether this is an x86-64 CPU with AVX2 and FMA, where all the caps select code the CPU runs."""
    machine = (machine or platform.machine()).lower()
    return machine in ("x86_64", "amd64") and cpu_flags(cpuinfo) >= NEEDED_FLAGS


def pin_arithmetic(environ: MutableMapping[str, str] | None = None, machine: str | None = None,
                   cpuinfo: str | None = None) -> dict[str, str]:
    """Cap the numerical libraries at AVX2 (before they load) so that the same params give the same bytes on
    every x86-64-v3 CPU; returns the variables it set (none when switched off, not applicable, or already set)."""
    environ = os.environ if environ is None else environ
    switch = environ.get(SWITCH, "").strip().lower()
    if switch not in ("", "native", "x86-64-v3"):  # a typo must not pass for a choice: say so, keep the caps
        print(f"mtt: {SWITCH}={environ[SWITCH]!r} is neither 'native' (no caps) nor 'x86-64-v3' (the default): "
              "the numerical libraries stay capped at AVX2", file=sys.stderr)
    if switch == "native" or not can_pin(machine, cpuinfo):
        return {}
    added = {name: value for name, value in PINS.items() if name not in environ}
    environ.update(added)
    return added


def arithmetic(environ: MutableMapping[str, str] | None = None) -> str:
    """What the run tag records: `x86-64-v3` when every cap is as pinned, else `native` or the caps in force."""
    environ = os.environ if environ is None else environ
    caps = {name: environ[name] for name in PINS if name in environ}
    if caps == PINS:
        return "x86-64-v3"
    if not caps:
        return "native"
    return ", ".join(f"{name}={value}" for name, value in caps.items())
