"""mtt: an experiment-tracked pipeline for regressing m_tt in dilepton tt events."""

__version__ = "0.1.0"
