"""The arithmetic pin: the numerical libraries capped at AVX2 before they load, so the bits do not depend on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mtt.core import cpu

AVX2 = "processor\t: 0\nflags\t\t: fpu sse sse2 ssse3 sse4_1 sse4_2 fma avx avx2\n"
AVX512 = "processor\t: 0\nflags\t\t: fpu sse sse2 sse4_2 fma avx avx2 avx512f avx512dq avx512bw avx512vl\n"
OLD = "processor\t: 0\nflags\t\t: fpu sse sse2 sse4_2 avx\n"


def test_an_avx512_cpu_is_capped_at_avx2_in_every_library():
    environ: dict[str, str] = {}
    assert cpu.pin_arithmetic(environ, "x86_64", AVX512) == cpu.PINS == environ
    assert environ["OPENBLAS_CORETYPE"] == "Haswell" and environ["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    assert cpu.arithmetic(environ) == "x86-64-v3"


def test_an_avx2_cpu_gets_the_same_caps():
    environ: dict[str, str] = {}
    assert cpu.pin_arithmetic(environ, "x86_64", AVX2) == cpu.PINS


def test_a_variable_the_user_set_is_kept():
    environ = {"OPENBLAS_CORETYPE": "Zen"}
    added = cpu.pin_arithmetic(environ, "x86_64", AVX2)
    assert "OPENBLAS_CORETYPE" not in added and environ["OPENBLAS_CORETYPE"] == "Zen"
    assert environ["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    tag = cpu.arithmetic(environ)
    assert tag.startswith("NPY_DISABLE_CPU_FEATURES=") and "OPENBLAS_CORETYPE=Zen" in tag


@pytest.mark.parametrize("switch", ["native", "NATIVE", " native "])
def test_native_switches_the_pin_off(switch):
    environ = {cpu.SWITCH: switch}
    assert cpu.pin_arithmetic(environ, "x86_64", AVX512) == {} and environ == {cpu.SWITCH: switch}
    assert cpu.arithmetic(environ) == "native"


@pytest.mark.parametrize("typo", ["nativ", "off", "avx512"])
def test_an_unknown_switch_value_is_named_and_the_caps_stay(typo, capsys):
    environ = {cpu.SWITCH: typo}
    assert cpu.pin_arithmetic(environ, "x86_64", AVX512) == cpu.PINS
    assert f"{cpu.SWITCH}={typo!r} is neither 'native'" in capsys.readouterr().err


def test_the_default_can_be_named():
    environ = {cpu.SWITCH: "x86-64-v3"}
    assert cpu.pin_arithmetic(environ, "x86_64", AVX2) == cpu.PINS


@pytest.mark.parametrize(("machine", "cpuinfo"), [("x86_64", OLD), ("aarch64", AVX2), ("arm64", ""),
                                                  ("x86_64", "no flags here\n")])
def test_cpus_the_caps_do_not_fit_are_left_alone(machine, cpuinfo):
    environ: dict[str, str] = {}
    assert cpu.pin_arithmetic(environ, machine, cpuinfo) == {} and environ == {}


def test_flags_are_read_from_cpuinfo():
    assert {"avx2", "fma", "avx512f"} <= cpu.cpu_flags(AVX512) and cpu.cpu_flags("") == frozenset()


def _fresh_env() -> dict[str, str]:
    """This process's environment without the caps (importing mtt.cli in this process set them)."""
    return {k: v for k, v in os.environ.items() if k not in cpu.PINS and k != cpu.SWITCH}


SPY = """
import json, os, sys
seen = {}
class Spy:
    def find_spec(self, name, path=None, target=None):
        if name == "numpy" and not seen:
            seen.update({k: os.environ.get(k) for k in %r})
        return None
sys.meta_path.insert(0, Spy())
import mtt.cli
import numpy, threadpoolctl
blas = [i for i in threadpoolctl.threadpool_info() if i["internal_api"] == "openblas"]
print(json.dumps({"seen": seen, "x86_v4": numpy._core._multiarray_umath.__cpu_features__["X86_V4"],
                  "openblas": sorted({i["architecture"] for i in blas})}))
"""


@pytest.mark.skipif(not cpu.can_pin(), reason="the caps apply to x86-64 CPUs with AVX2 and FMA")
def test_the_mtt_command_caps_the_libraries_before_numpy_loads():
    out = subprocess.run([sys.executable, "-c", SPY % list(cpu.PINS)], env=_fresh_env(), capture_output=True,
                         text=True, check=True).stdout
    found = json.loads(out.splitlines()[-1])
    assert found["seen"] == cpu.PINS  # set before numpy (and OpenBLAS with it) loaded
    assert found["x86_v4"] is False  # numpy's AVX-512 loops are off, whatever this CPU has
    assert found["openblas"] == ["Haswell"]  # numpy's and scipy's OpenBLAS run the AVX2 kernel
