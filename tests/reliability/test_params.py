"""Params that YAML would read silently wrong: each is a clear error naming the key."""

from __future__ import annotations

import pytest

from mtt.cli import main
from mtt.core.errors import ParamsError
from mtt.core.params import parse_overrides
from mtt.tools.params import load_params


def test_a_leading_zero_is_not_read_as_octal():
    with pytest.raises(ParamsError, match=r"override 'n_events=010': n_events: '010' .* leading zero, which YAML "
                                          r"reads as octal \(8\); write 10"):
        parse_overrides(["n_events=010"], "simulate")
    assert parse_overrides(["n_events=0", "seed=10"], "simulate") == {"n_events": 0, "seed": 10}


def test_a_duplicate_key_in_params_yaml_is_an_error(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("simulate:\n  n_events: 500\n  seed: 1\n  n_events: 800\n")
    with pytest.raises(ParamsError, match=r"params.yaml: key 'n_events' appears twice \(lines 2 and 4\)"):
        load_params(path, "simulate")


def test_an_empty_params_file_is_not_all_defaults(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("# nothing yet\n")
    with pytest.raises(ParamsError, match="params.yaml: the params file is empty"):
        load_params(path, "simulate")


def test_invalid_yaml_in_an_override_names_the_key_without_a_traceback(capsys):
    with pytest.raises(ParamsError, match=r"override 'n_events=\{a: 1': n_events: the value is not valid YAML"):
        parse_overrides(["n_events={a: 1"], "simulate")
    assert main(["simulate", "-S", "n_events={a: 1", "--out", "/nonexistent/raw"]) == 2
    err = capsys.readouterr().err
    assert "mtt simulate: error: override 'n_events={a: 1': n_events" in err and "Traceback" not in err
