"""Crash-safe outputs: nothing that looks complete unless it is."""

from __future__ import annotations

import pytest

from mtt.core.io import OutputError, atomic_dir, atomic_file, check_writable_dir


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

    from mtt.core.io import write_json

    write_json(tmp_path / "out" / "m.json", {"n": 3, "x": np.float64(0.5), "path": tmp_path})
    assert json.loads((tmp_path / "out" / "m.json").read_text()) == {"n": 3, "x": 0.5, "path": str(tmp_path)}
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["m.json"]  # no temporary file left


def _datime_codes(path) -> list[int]:
    """Every fDatime in a ROOT file of one tree: the keys of the file, its streamers, free segments, the keys in
    the directory and of every basket, and the directory's creation and modification dates."""
    import struct

    import uproot

    raw = path.read_bytes()
    with uproot.open(path) as root:
        header = root.file
        offsets = [header.fBEGIN, header.fSeekInfo, header.fSeekFree]
        offsets += [root.key(name).data_cursor.index - root.key(name).fKeylen for name in root.keys(cycle=True)]
        for tree in root.values():
            for branch in tree.branches:
                offsets += [branch.member("fBasketSeek")[i] for i in range(branch.num_baskets)]
        codes = [struct.unpack(">I", raw[at + 10:at + 14])[0] for at in offsets]
        return codes + [uproot._util.datetime_to_code(d) for d in (root.created_on, root.modified_on)]


def test_reproducible_root_fixes_every_date_and_uuid(tmp_path):
    import uuid

    import numpy as np
    import uproot

    from mtt.core.io import ROOT_DATIME, ROOT_UUID_NAMESPACE, reproducible_root

    for folder in ("a", "b"):
        with reproducible_root(tmp_path / folder / "x.root", "seed=1 chunk=0") as root:
            root.mktree("Events", {"x": np.arange(5.0), "n": np.arange(5, dtype=np.int32)})
    first, second = (tmp_path / "a" / "x.root").read_bytes(), (tmp_path / "b" / "x.root").read_bytes()
    assert first == second
    epoch = uproot._util.datetime_to_code(ROOT_DATIME)
    codes = _datime_codes(tmp_path / "a" / "x.root")
    assert len(codes) == 8 and set(codes) == {epoch}  # 3 file keys, the tree's key, 2 baskets, 2 directory dates
    with uproot.open(tmp_path / "a" / "x.root") as root:
        assert root.file.uuid == uuid.uuid5(ROOT_UUID_NAMESPACE, "seed=1 chunk=0:0")
    assert b"x.root" in first and b".tmp" not in first  # its own name inside, not the temporary one
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["x.root"]


def test_uproot_writes_outside_reproducible_root_keep_their_time(tmp_path):
    import datetime

    import numpy as np
    import uproot

    from mtt.core.io import reproducible_root

    with reproducible_root(tmp_path / "fixed.root", "x") as root:
        root.mktree("t", {"x": np.arange(3.0)})
    with uproot.recreate(tmp_path / "own.root") as root:
        root.mktree("t", {"x": np.arange(3.0)})
    with uproot.open(tmp_path / "own.root") as root:
        assert root.key("t").created_on.year == datetime.datetime.now().year


def test_a_failed_reproducible_root_leaves_nothing(tmp_path):
    import numpy as np

    from mtt.core.io import reproducible_root

    with pytest.raises(ValueError), reproducible_root(tmp_path / "x.root", "x") as root:
        root.mktree("t", {"a": np.zeros(2), "b": np.zeros(3)})
    assert list(tmp_path.iterdir()) == []


def test_portable_path_is_relative_inside_the_working_folder(tmp_path, monkeypatch):
    from mtt.core.io import portable_path

    monkeypatch.chdir(tmp_path)
    assert portable_path("data/raw/a.root") == "data/raw/a.root"
    assert portable_path(tmp_path / "data" / "prepared") == "data/prepared"
    assert portable_path("./data/../data/x") == "data/x"
    assert portable_path("/elsewhere/lhe/events.lhe") == "/elsewhere/lhe/events.lhe"
    assert portable_path("../up.lhe") == "../up.lhe"
