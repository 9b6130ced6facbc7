"""Running expectation suites with great-expectations: one ephemeral context, Data Docs, flattened results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from mtt.validate.report import Check


def _observed(result: dict[str, Any]) -> Any:
    if "observed_value" in result:
        value = result["observed_value"]
        if isinstance(value, dict) and "values" in value:
            return value["values"]
        return value.item() if hasattr(value, "item") else value
    if result.get("unexpected_percent") is not None:
        return f"{result['unexpected_percent']:.3g}% of values outside"
    return None



class GXRunner:
    """One ephemeral great-expectations context; each suite runs through a Checkpoint that updates Data Docs."""

    def __init__(self, docs_dir: Path | None) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.gx = gx
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.source = self.context.data_sources.add_pandas("mtt")
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
        result = checkpoint.run(batch_parameters={"dataframe": frame})
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
