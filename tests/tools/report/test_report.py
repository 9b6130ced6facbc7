"""`mtt report`: the table and figures of a study, rebuilt from a real MLflow store (no mocks)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from PIL import Image

from mtt.cli import main
from mtt.tools.report.report import MISSING, TABLE_BEGIN, TABLE_END, ReportError, metric_history, run_report

COLUMNS = {"resolution": {"header": "resolution", "format": ".3f"},
           "bias": {"header": "median bias", "format": "+.3f"},
           "width_ratio": {"header": "width ratio", "format": ".2f"},
           "peak": {"header": "Z' peak (GeV)", "format": ".0f", "key": "zprime/{estimator}/peak"}}


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty SQLite store made once: each fresh one costs ~1.3 s of schema migration."""
    path = tmp_path_factory.mktemp("db") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments(max_results=1)
    return path


@pytest.fixture
def study(tmp_path: Path, empty_db: Path, request: pytest.FixtureRequest) -> tuple[MlflowClient, dict[str, str]]:
    """The `store` fixture (seeded with the migrated schema) holding two evaluated runs: (client, run ids).

    `mse` has every model and ellipse metric, the Z' peak, train's wall time and a 1800x900 spectrum plot;
    `mdn` has no width ratio and no Z' metrics."""
    shutil.copy(empty_db, tmp_path / "mlflow.db")
    client: MlflowClient = request.getfixturevalue("store")
    experiment = client.create_experiment("mtt", artifact_location=(tmp_path / "mlartifacts").as_uri())
    values = {"mse": {"model/resolution": 0.12345, "model/bias": -0.0123, "model/width_ratio": 0.951,
                      "baseline_ellipse/resolution": 0.2109, "baseline_ellipse/bias": 0.0456,
                      "baseline_ellipse/width_ratio": 1.02, "zprime/model/peak": 998.6, "wall_time_s": 42.4},
              "mdn": {"model/resolution": 0.1111, "model/bias": 0.0021, "wall_time_s": 61.0}}
    ids = {}
    for name, metrics in values.items():
        run_id = client.create_run(experiment, run_name=f"{name} run").info.run_id
        client.log_batch(run_id, metrics=[Metric(k, v, 0, 0) for k, v in metrics.items()])
        ids[name] = run_id
    plot = tmp_path / "spectrum.png"
    Image.new("RGB", (1800, 900), (250, 250, 250)).save(plot)
    client.log_artifact(ids["mse"], str(plot), artifact_path="evaluate/plots")
    for run_id in ids.values():
        client.set_terminated(run_id)
    return client, ids


def write_spec(path: Path, ids: dict[str, str], **changes: object) -> Path:
    """A bias-study-like spec: three rows (model of two runs, the ellipse method), training time, a figure."""
    spec = {"experiment": "mtt", "label_header": "method", "columns": COLUMNS,
            "extra_columns": [{"key": "wall_time_s", "header": "train (s)", "format": ".0f"}],
            "rows": [{"label": "MSE point, default", "run": ids["mse"], "estimator": "model"},
                     {"label": "MDN", "run": ids["mdn"], "estimator": "model"},
                     {"label": "ellipse method", "run": ids["mse"], "estimator": "baseline_ellipse"}],
            "figures": [{"run": ids["mse"], "artifact": "evaluate/plots/spectrum.png", "name": "spectrum_default.png"}],
            **changes}
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def table_rows(markdown: str) -> dict[str, list[str]]:
    """Label -> the other cells of each body row of the Markdown table."""
    lines = [line for line in markdown.splitlines() if line.startswith("| ")][1:]
    cells = [[c.strip() for c in line.strip("|").split(" | ")] for line in lines]
    return {row[0]: row[1:] for row in cells}


def test_report_fills_the_table_from_the_runs_and_downscales_the_figure(study, tmp_path):
    client, ids = study
    spec = write_spec(tmp_path / "bias-study.yaml", ids)
    report = run_report(spec, tmp_path / "docs", client=client)

    assert report.table == tmp_path / "docs" / "bias-study-table.md"
    text = report.table.read_text()
    assert text == report.markdown
    assert "| method | resolution | median bias | width ratio | Z' peak (GeV) | train (s) | run |" in text
    rows = table_rows(text)
    assert rows == {
        "MSE point, default": ["0.123", "-0.012", "0.95", "999", "42", f"`{ids['mse'][:8]}`"],
        "MDN": ["0.111", "+0.002", MISSING, MISSING, "61", f"`{ids['mdn'][:8]}`"],
        "ellipse method": ["0.211", "+0.046", "1.02", MISSING, "42", f"`{ids['mse'][:8]}`"]}
    assert f"- `{ids['mse'][:8]}`: `{ids['mse']}` (mse run)" in text  # the full ids, for citing
    assert f"- `{ids['mdn'][:8]}`: `{ids['mdn']}` (mdn run)" in text
    assert "no metric 'model/width_ratio'" in " ".join(report.missing)
    assert "no metric 'zprime/baseline_ellipse/peak'" in " ".join(report.missing)

    assert report.figures == [tmp_path / "docs" / "figures" / "spectrum_default.png"]
    with Image.open(report.figures[0]) as image:
        assert (image.format, image.size) == ("PNG", (900, 450))
    assert not [p for p in (tmp_path / "docs").rglob(".*") if p.name.endswith((".tmp", ".old"))]


def test_a_row_can_read_a_column_under_its_own_key(study, tmp_path):
    client, ids = study
    rows = [{"label": "MDN, peak of the MSE run", "run": ids["mdn"], "keys": {"resolution": "model/bias"}}]
    spec = write_spec(tmp_path / "override.yaml", ids, rows=rows, figures=[])
    report = run_report(spec, tmp_path / "docs", client=client)
    assert table_rows(report.markdown)["MDN, peak of the MSE run"][:2] == ["0.002", "+0.002"]
    assert report.figures == []


def test_cli_prints_the_table_and_writes_table_and_figure(study, tmp_path, capsys):
    _, ids = study
    spec = write_spec(tmp_path / "bias-study.yaml", ids)
    assert main(["report", "--spec", str(spec), "--out", str(tmp_path / "docs")]) == 0
    out = capsys.readouterr().out
    assert "| MDN | 0.111 | +0.002 | – | – | 61 |" in out
    assert "mtt report: 3 cell(s) – (no such metric in the run), e.g. row 'MDN'" in out and "wrote" in out
    assert (tmp_path / "docs" / "bias-study-table.md").read_text() in out
    assert (tmp_path / "docs" / "figures" / "spectrum_default.png").is_file()


def test_an_unknown_run_names_the_row_and_the_id_and_writes_nothing(study, tmp_path, capsys):
    client, ids = study
    bogus = "0123456789abcdef0123456789abcdef"
    rows = [{"label": "MSE point, default", "run": ids["mse"]}, {"label": "typo row", "run": bogus}]
    spec = write_spec(tmp_path / "bad.yaml", ids, rows=rows)
    with pytest.raises(ReportError, match=f"row 'typo row': no MLflow run '{bogus}'"):
        run_report(spec, tmp_path / "docs", client=client)
    assert main(["report", "--spec", str(spec), "--out", str(tmp_path / "docs")]) == 2
    assert f"mtt report: error: row 'typo row': no MLflow run '{bogus}'" in capsys.readouterr().err
    assert not (tmp_path / "docs").exists()

    spec = write_spec(tmp_path / "other.yaml", ids, experiment="zprime")
    with pytest.raises(ReportError, match="row 'MSE point, default': run .* belongs to experiment 'mtt'"):
        run_report(spec, tmp_path / "docs", client=client)
    figures = [{"run": ids["mdn"], "artifact": "evaluate/plots/spectrum.png", "name": "s.png"}]
    spec = write_spec(tmp_path / "nofig.yaml", ids, figures=figures)
    with pytest.raises(ReportError, match="figure 's.png': run .* has no artifact 'evaluate/plots/spectrum.png'"):
        run_report(spec, tmp_path / "docs", client=client)
    assert not (tmp_path / "docs").exists()


def test_curves_overlay_the_runs_per_epoch_histories(study, tmp_path):
    client, ids = study
    # the current names (physics under epoch/, diagnostics under watch/), and the bare ones of older runs
    for name, scale, (loss, grad) in (("mse", 1.0, ("epoch/loss", "watch/grad_norm")),
                                      ("mdn", 3.0, ("loss", "grad_norm"))):
        client.log_batch(ids[name], metrics=[Metric(loss, scale / (1 + e), 0, e) for e in range(5)]
                         + [Metric(grad, 0.1 * e, 0, e) for e in range(5)])
    curves = [{"name": "dip.png", "runs": {"MSE": ids["mse"], "MDN": ids["mdn"]}, "metrics": ["loss", "grad_norm"],
               "log_y": ["loss"], "normalise": ["loss"]}]
    report = run_report(write_spec(tmp_path / "s.yaml", ids, figures=[], curves=curves), tmp_path / "docs",
                        client=client)
    assert report.figures == [tmp_path / "docs" / "figures" / "dip.png"]
    for run_id in ids.values():  # found under either name
        assert len(metric_history(client, run_id, "grad_norm")) == len(metric_history(client, run_id, "loss")) == 5
    with Image.open(report.figures[0]) as image:
        assert image.width > 400 and image.height > 200
    with pytest.raises(ReportError, match="curves 'dip.png': no MLflow run 'nope'"):
        bad = [{**curves[0], "runs": {"MSE": "nope"}}]
        run_report(write_spec(tmp_path / "t.yaml", ids, figures=[], curves=bad), tmp_path / "docs", client=client)


def test_the_table_is_put_between_the_markers_of_the_document_and_the_prose_is_kept(study, tmp_path):
    client, ids = study
    document = tmp_path / "study.md"
    document.write_text(f"# Study\n\nProse before.\n\n{TABLE_BEGIN}\nold table\n{TABLE_END}\n\nProse after.\n")
    spec = write_spec(tmp_path / "s.yaml", ids, figures=[], document=str(document))
    report = run_report(spec, tmp_path / "docs", client=client)
    text = document.read_text()
    assert text.startswith("# Study\n\nProse before.\n\n") and text.endswith(f"{TABLE_END}\n\nProse after.\n")
    assert "old table" not in text and report.markdown.rstrip() in text
    run_report(spec, tmp_path / "docs", client=client)
    assert document.read_text() == text  # the same runs give the same document
    document.write_text("no markers\n")
    with pytest.raises(ReportError, match="no table markers"):
        run_report(spec, tmp_path / "docs", client=client)
