"""Crash-safe outputs: nothing that looks complete unless it is."""

from __future__ import annotations

import pytest

from mtt.io import OutputError, atomic_dir, atomic_file, check_writable_dir


def test_atomic_file_appears_only_on_success(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError), atomic_file(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with atomic_file(target) as tmp:
        tmp.write_text("whole")
    assert target.read_text() == "whole" and [p.name for p in tmp_path.iterdir()] == ["out.json"]
    assert oct(target.stat().st_mode & 0o777) != oct(0o600)


def test_atomic_dir_replaces_the_whole_folder_or_nothing(tmp_path):
    target = tmp_path / "raw"
    with atomic_dir(target) as tmp:
        (tmp / "a.root").write_text("1")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "b.root").write_text("2")
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in target.iterdir()) == ["a.root"]
    with atomic_dir(target) as tmp:
        (tmp / "c.root").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["c.root"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def test_check_writable_dir(tmp_path):
    assert check_writable_dir(tmp_path / "new" / "raw") == tmp_path / "new" / "raw"
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match="exists and is not a folder"):
        check_writable_dir(tmp_path / "f")
    with pytest.raises(OutputError, match="cannot write in"):
        check_writable_dir(tmp_path / "f" / "raw")


def test_write_json_is_atomic_and_readable(tmp_path):
    import json

    import numpy as np

    from mtt.io import write_json

    write_json(tmp_path / "out" / "m.json", {"n": 3, "x": np.float64(0.5), "path": tmp_path})
    assert json.loads((tmp_path / "out" / "m.json").read_text()) == {"n": 3, "x": 0.5, "path": str(tmp_path)}
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["m.json"]  # no temporary file left
