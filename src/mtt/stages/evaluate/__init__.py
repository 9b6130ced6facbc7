"""`evaluate` stage: the model next to the classical estimators, on the same test events.

`stage.py` runs it (read the model folder and the split, write metrics, tables and plots, log them to the
training run); `estimators.py` computes the model, visible-mass and ellipse-method estimates and their
figures; `tables.py` turns them into the DVC plots' CSVs, MLflow metric names and the printed table.
"""
