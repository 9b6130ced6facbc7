"""The error classes every stage shares, so the command line reports any of them the same way.

Each message names the file, branch, column or param at fault and what was expected. `MttError` is a
`ValueError`, so code that caught the stage errors as value errors keeps working.
"""

from __future__ import annotations


class MttError(ValueError):
    """A problem the user can fix, with a message that says where and what."""


class ParamsError(MttError):
    """A params.yaml problem, reported with the offending key."""


class DataError(MttError):
    """A prepared split that breaks the data contract: missing file, columns, feature set, NaN."""


class ArtifactError(MttError):
    """A model folder that is missing, incomplete, corrupt or inconsistent."""


class PrepareError(MttError):
    """Bad input to prepare, named with the file, tree, branch or cut."""


class ValidationFailed(MttError):
    """Critical expectations failed; the message names split, column, expectation and observed value."""


class TrainError(MttError):
    """Bad training input or a diverging run, with the file, column or epoch."""


class EvaluateError(MttError):
    """Missing model, split or columns for evaluation, named."""


class RegistryError(MttError):
    """A missing registered model, version, alias or metric in the MLflow model registry, named."""


class PredictError(MttError):
    """A model, input or output that `mtt predict` cannot use."""


class OutputRefused(MttError):
    """An output that would replace what the user has (an input, the project, files a stage did not write)."""
