"""`compare` stage: the configurations of the study side by side, on the same test events.

`stage.py` reads every configuration's evaluate and train outputs and writes the comparison (a Markdown and a
JSON table, the headline DVC metrics, overlay figures); `table.py` builds the rows; `figures.py` draws the
overlays; `tracking.py` gathers the configurations' MLflow runs under one parent run.
"""
