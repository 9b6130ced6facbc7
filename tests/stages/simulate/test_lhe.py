"""LHE structure check: counts and beams of good files, file:line errors for bad ones."""

from __future__ import annotations

import pytest
from lhe_writer import write_lhe

from mtt.stages.simulate.lhe import LHEError, inspect_lhe


def test_inspect_written_file(tmp_path):
    info = inspect_lhe(write_lhe(tmp_path / "tt.lhe", [400.0, 500.0, 900.0]))
    assert info.n_events == 3 and info.beam_ids == (2212, 2212)
    assert info.sqrt_s == pytest.approx(13000.0)


def test_inspect_real_pythia6_file(shared_data):
    info = inspect_lhe(shared_data / "pythia6_ttbar_tevatron.lhe")
    assert info.n_events == 100 and info.beam_ids == (2212, -2212)
    assert info.sqrt_s == pytest.approx(1960.0)


def test_missing_file(tmp_path):
    with pytest.raises(LHEError, match="nope.lhe: LHE file not found"):
        inspect_lhe(tmp_path / "nope.lhe")


def _corrupt(tmp_path, old: str, new: str, count: int = 1):
    path = write_lhe(tmp_path / "tt.lhe", [400.0, 500.0])
    path.write_text(path.read_text().replace(old, new, count))
    return path


def test_not_an_lhe_file(tmp_path):
    path = tmp_path / "x.lhe"
    path.write_text("hello\n")
    with pytest.raises(LHEError, match=r"x.lhe:1: not an LHE file"):
        inspect_lhe(path)


def test_bad_number_names_the_line(tmp_path):
    path = _corrupt(tmp_path, " 1 1 0 0 0 0 ", " 1 1 0 0 0 0 ")  # unchanged: find a particle line
    lines = path.read_text().splitlines()
    lines[11] = lines[11].replace("E+", "X+", 1)  # second particle line of the first event
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(LHEError, match=r"tt.lhe:12: particle line .*not a number"):
        inspect_lhe(path)


def test_missing_particle_line(tmp_path):
    path = write_lhe(tmp_path / "tt.lhe", [400.0, 500.0])
    lines = path.read_text().splitlines()
    del lines[12]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(LHEError, match=r"tt.lhe:\d+: event starting at line 9 has 1 particle line\(s\) missing"):
        inspect_lhe(path)


def test_truncated_file(tmp_path):
    path = write_lhe(tmp_path / "tt.lhe", [400.0, 500.0])
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-5]) + "\n")  # the second event loses its last particle lines
    with pytest.raises(LHEError, match="file ends inside the event starting at line 24"):
        inspect_lhe(path)


def test_no_init_block(tmp_path):
    path = _corrupt(tmp_path, "<init>", "<nit>")
    with pytest.raises(LHEError, match="no <init> block"):
        inspect_lhe(path)
