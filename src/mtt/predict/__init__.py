"""The predict stage: a trained model on new ROOT files (see `mtt.predict.stage`)."""

from mtt.predict.stage import Request, main, predict, resolve_model

__all__ = ["Request", "main", "predict", "resolve_model"]
