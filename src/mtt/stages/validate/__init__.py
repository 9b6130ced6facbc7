"""`validate` stage: great-expectations checks that catch bad scaling, wrong units and feature drift.

Between `prepare` and `train`: `reference.py` builds the train reference (profile and every scaler kind,
fitted on train only) as tracked outputs; `stage.py` validates every split against it with the suites of
`suites.py` (run by `gx.py`), writes a JSON summary (a DVC metric) and an HTML Data Docs site, prints a
table (`report.py`), and stops the pipeline on critical failures. `validate_new` checks any new dataset
against an existing reference.
"""
