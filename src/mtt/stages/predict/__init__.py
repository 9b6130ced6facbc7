"""The predict stage: a trained model on new ROOT files (see `mtt.stages.predict.stage`)."""

from mtt.stages.predict.stage import Request, main, predict, resolve_model

__all__ = ["Request", "main", "predict", "resolve_model"]
