"""The pipeline's stages, side by side: each a DVC stage with its params, its command line and its `stage.py`;
a stage imports `mtt.core` and libraries, never another stage."""
