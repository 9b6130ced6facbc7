"""Running expectation suites with great-expectations: one ephemeral context, Data Docs, flattened results."""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any

import pandas as pd

from mtt.stages.validate import altair_cache
from mtt.stages.validate.report import Check


def _observed(result: dict[str, Any]) -> Any:
    if "observed_value" in result:
        value = result["observed_value"]
        if isinstance(value, dict) and "values" in value:
            return value["values"]
        return value.item() if hasattr(value, "item") else value
    if result.get("unexpected_percent") is not None:
        return f"{result['unexpected_percent']:.3g}% of values outside"
    return None



#: every suite's run in Data Docs is named this and dated RUN_EPOCH + its order in seconds: the site (folders,
#: index, pages) is the same for the same data; when validate ran is in the MLflow run and the file times
RUN_NAME = "mtt-validate"
RUN_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
#: what great-expectations 1.24 puts into the pages that changes on every build: a cache-busting time on the
#: logo's URL (and the context's id where analytics are on), the batch's load time (a batch marker), and random
#: (uuid4) ids of collapsible elements
_CACHE_BUSTER = re.compile(r"\?d=\d{8}T\d{6}\.\d{6}Z(&dataContextId=[0-9a-f-]+)?|\?dataContextId=[0-9a-f-]+")
_LOAD_TIME = re.compile(r"(>ge_load_time<.*?>)\d{8}T\d{6}\.\d{6}Z(?=<)", re.DOTALL)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def reproducible_docs(folder: Path) -> None:
    """Make the built Data Docs the same bytes for the same results: strip the logo URL's build time, leave the
    batch's load time out, number each page's random element ids in order of appearance (the runs' names and
    times are fixed when run).

    great-expectations takes no argument for these, and patching its renderer would change private code
    that moves between releases; rewriting its output is local to our folder, and the test comparing two builds
    byte for byte catches anything a new release adds."""
    for page in sorted(folder.rglob("*.html")):
        text = page.read_text(encoding="utf-8")
        fixed = _number_ids(_LOAD_TIME.sub(r"\1not recorded", _CACHE_BUSTER.sub("", text)))
        if fixed != text:
            page.write_text(fixed, encoding="utf-8")


def _number_ids(text: str) -> str:
    """Each distinct random UUID of a page becomes mtt-0, mtt-1, ... in order of first appearance (an id and the
    links to it stay paired)."""
    numbers: dict[str, str] = {}
    return _UUID.sub(lambda m: numbers.setdefault(m.group(0), f"mtt-{len(numbers)}"), text)


class GXRunner:
    """One ephemeral great-expectations context; each suite runs through a Checkpoint that updates Data Docs."""

    def __init__(self, docs_dir: Path | None) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        altair_cache.install()  # the drift checks' charts: ~8 s of ~40 s without it
        self.gx = gx
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.source = self.context.data_sources.add_pandas("mtt")
        self.runs = 0
        self.site = None
        if docs_dir is not None:
            self.site = "mtt"
            self.context.add_data_docs_site(site_name=self.site, site_config={
                "class_name": "SiteBuilder", "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                                  "base_directory": str(Path(docs_dir).resolve())}})

    def run(self, split: str, name: str, frame: pd.DataFrame, expectations: list[Any]) -> list[Check]:
        """Validate `frame` against the expectations as suite `name`; flatten the results."""
        gx = self.gx
        # the whole suite at once: add_expectation re-serialises the suite into the store on every call
        suite = self.context.suites.add(gx.ExpectationSuite(name=name, expectations=expectations))
        batch = self.source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("whole")
        definition = self.context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch,
                                                                                      suite=suite))
        actions = [gx.checkpoint.UpdateDataDocsAction(name="docs", site_names=[self.site])] if self.site else []
        checkpoint = self.context.checkpoints.add(gx.Checkpoint(name=name, validation_definitions=[definition],
                                                                actions=actions))
        from great_expectations.core.run_identifier import RunIdentifier

        run_id = RunIdentifier(run_name=RUN_NAME, run_time=RUN_EPOCH + datetime.timedelta(seconds=self.runs))
        self.runs += 1
        result = checkpoint.run(batch_parameters={"dataframe": frame}, run_id=run_id)
        checks = []
        for suite_result in result.run_results.values():
            for r in suite_result.results:
                config = r.expectation_config
                meta = config.meta or {}
                checks.append(Check(split=split, category=meta.get("category", "?"), expectation=config.type,
                                    column=config.kwargs.get("column", ""), success=bool(r.success),
                                    critical=bool(meta.get("critical", True)), observed=_observed(r.result),
                                    why=meta.get("why", "")))
        return checks
