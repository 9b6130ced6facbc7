"""`prepare` stage: ROOT files (ours or CMS NanoAOD) -> selected events, features, train/val/test Parquet.

`stage.py` runs it; `inputs.py` reads and checks the ROOT files, `schemas.py` maps branch layouts to
objects, `selection.py` applies the cuts, `features.py` builds the feature sets, `split.py` assigns splits,
`output.py` writes Parquet and the cutflow. What the output holds is the contract in `mtt.core.dataset`.
"""
