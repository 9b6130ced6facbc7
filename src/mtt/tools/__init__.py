"""Commands built on the stages: sweeps and tuning (train and evaluate as subprocesses), the study report,
the MLflow store and its housekeeping, model promotion, the baseline check."""
