"""The pinned environment: requirements.lock, conda.yaml and pyproject agree."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[=<>!~\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _lock() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"requirements.lock: {line!r} is not pinned with =="
            pins[_name(name)] = version
    return pins


def _conda_pip() -> list[str]:
    env = yaml.safe_load((REPO / "conda.yaml").read_text())
    pip = next(dep["pip"] for dep in env["dependencies"] if isinstance(dep, dict))
    return [p for p in pip if not p.startswith("-e")]


def test_conda_pins_equal_the_lock():
    lock = _lock()
    for requirement in _conda_pip():
        name, _, version = requirement.partition("==")
        assert version, f"conda.yaml: {requirement!r} is not pinned"
        assert lock.get(_name(name)) == version, f"conda.yaml pins {requirement}, lock has {lock.get(_name(name))}"


def test_conda_python_is_311():
    env = yaml.safe_load((REPO / "conda.yaml").read_text())
    assert "python=3.11" in env["dependencies"]


def test_required_versions_are_pinned():
    lock = _lock()
    assert lock["tensorflow-cpu"] == "2.21.0" and lock["mlflow"] == "3.17.2"
    assert lock["pythia8mc"] == "8.317.2" and lock["keras"].startswith("3.15")
    assert lock["dvc"].startswith("3.67") and lock["great-expectations"].startswith("1.24")
    assert lock["uproot"].startswith("5.7") and lock["awkward"].startswith("2.")


def test_every_direct_dependency_is_in_conda_yaml():
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    direct = project["dependencies"] + project["optional-dependencies"]["dev"]
    conda = {_name(r) for r in _conda_pip()}
    assert {_name(d) for d in direct} <= conda


def test_second_make_call_does_not_reinstall():
    import shutil
    import subprocess

    stamp = REPO / ".venv" / ".installed"
    if shutil.which("make") is None or not stamp.exists():
        import pytest

        pytest.skip("needs make and a .venv created by `make`")
    dry_run = subprocess.run(["make", "-n", "test"], cwd=REPO, capture_output=True, text=True, check=True)
    assert "pip install" not in dry_run.stdout
