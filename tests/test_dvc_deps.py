"""dvc.yaml tells the truth: each stage's code deps are exactly the mtt modules the stage imports.

The imports are walked statically (`ast`, function-level imports included) from the stage's command module
(`mtt/stages/<stage>/command.py`, which `mtt <stage>` runs), transitively within `mtt`. `mtt/__init__.py`,
`cli.py` and `__main__.py` are the dispatcher every command passes through and are left out on purpose: a
new option of one subcommand must not re-run the pipeline. A file that holds only a docstring (the floors'
`__init__.py`) runs no code and is left out too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
#: the dispatcher every command passes through: the entry points, and how commands declare options and end
DISPATCHER = {"mtt/__init__.py", "mtt/cli.py", "mtt/__main__.py", "mtt/core/command.py", "mtt/core/outcome.py"}
#: dvc.yaml stage -> the stage package it runs (the Z' branch runs simulate and prepare again)
STAGES = {"simulate": "simulate", "prepare": "prepare", "validate": "validate", "train": "train",
          "evaluate": "evaluate", "compare": "compare", "simulate_zprime": "simulate", "prepare_zprime": "prepare"}


def module_file(name: str, src: Path = SRC) -> Path | None:
    """The source file of module `name` under `src` (a package's __init__.py), or None outside it."""
    base = src / Path(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path, src: Path = SRC) -> set[str]:
    """Every mtt module a file imports, at any depth in the file (lazy imports included)."""
    module = ".".join(path.relative_to(src).with_suffix("").parts)
    package = module.removesuffix(".__init__") if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in found if m == "mtt" or m.startswith("mtt.")}


def closure(start: str, src: Path = SRC) -> set[str]:
    """Files (relative to src) reached from module `start`, parents' __init__ included, dispatcher excluded."""
    seen: set[Path] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__, a/b/__init__ too
            path = module_file(".".join(parts[:i]), src)
            if path is not None and path not in seen:
                seen.add(path)
                todo.extend(imported_modules(path, src))
    return {p.relative_to(src).as_posix() for p in seen if runs_code(p)} - DISPATCHER


def runs_code(path: Path) -> bool:
    """Whether a file holds more than a docstring (one that does not cannot change a stage's output)."""
    body = ast.parse(path.read_text()).body
    return not (len(body) <= 1 and all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body))


def declared(deps: list[str], src: Path = SRC, repo: Path = REPO) -> set[str]:
    """The .py files (relative to src) that a stage's deps cover."""
    out: set[str] = set()
    for dep in deps:
        path = repo / dep
        if not path.resolve().is_relative_to(src.resolve()):
            continue
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        out.update(f.relative_to(src).as_posix() for f in files if runs_code(f))
    return out


def dvc_deps(stage: str, dvc_file: Path = REPO / "dvc.yaml") -> list[str]:
    """A stage's deps (a foreach stage's: those of its `do` template, one per configuration)."""
    definition = yaml.safe_load(dvc_file.read_text())["stages"][stage]
    return definition.get("do", definition)["deps"]


def mismatch(stage: str, deps: list[str], src: Path = SRC, repo: Path = REPO) -> tuple[set[str], set[str]]:
    """(imported but not declared, declared but not imported)."""
    imported, listed = closure(f"mtt.stages.{STAGES.get(stage, stage)}.command", src), declared(deps, src, repo)
    return imported - listed, listed - imported


@pytest.mark.parametrize("stage", STAGES)
def test_stage_deps_are_its_imports(stage: str) -> None:
    undeclared, unused = mismatch(stage, dvc_deps(stage))
    assert not undeclared, f"dvc.yaml stage {stage!r} does not list files it imports: {sorted(undeclared)}"
    assert not unused, f"dvc.yaml stage {stage!r} lists files it never imports: {sorted(unused)}"


def test_a_missing_dep_is_caught(tmp_path: Path) -> None:
    """The check fails on a deliberate violation: simulate's detector imports kinematics, the deps omit it."""
    deps = [d for d in dvc_deps("simulate") if d != "src/mtt/core/kinematics.py"]
    undeclared, _ = mismatch("simulate", deps)
    assert "mtt/core/kinematics.py" in undeclared


def test_an_unused_dep_is_caught() -> None:
    """... and a dep the stage never imports (train listing the ellipse method) is caught too."""
    _, unused = mismatch("train", [*dvc_deps("train"), "src/mtt/core/reco/ellipse.py"])
    assert unused == {"mtt/core/reco/ellipse.py"}


def test_lazy_and_relative_imports_are_followed(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "mtt" / "stage").mkdir(parents=True)
    (src / "mtt" / "__init__.py").write_text("")
    (src / "mtt" / "floor.py").write_text("LEVEL = 1\n")
    (src / "mtt" / "other.py").write_text("")
    (src / "mtt" / "stage" / "__init__.py").write_text("from .work import run\n")
    (src / "mtt" / "stage" / "work.py").write_text("def run():\n    from mtt import floor\n")
    assert closure("mtt.stage", src) == {"mtt/stage/__init__.py", "mtt/stage/work.py", "mtt/floor.py"}


@pytest.mark.parametrize("owner", ["simulate", "validate", "train", "evaluate"])
def test_a_stage_params_module_reruns_only_its_stage(owner: str) -> None:
    """Editing one stage's params (train/params.py) leaves every other stage's code deps, and so its
    `dvc status`, untouched: the params modules are split per stage for this."""
    params_file = f"mtt/stages/{owner}/params.py"
    touched = {stage for stage in STAGES if params_file in declared(dvc_deps(stage))}
    assert touched == {stage for stage, package in STAGES.items() if package == owner}


def test_the_prepare_section_reruns_prepare_only() -> None:
    """The prepare section's schema lives with the events code prepare and predict share: no other stage."""
    touched = {stage for stage in STAGES if "mtt/core/events/params.py" in declared(dvc_deps(stage))}
    assert touched == {"prepare", "prepare_zprime"}
