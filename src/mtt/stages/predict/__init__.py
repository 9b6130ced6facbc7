"""The predict stage: a trained model on new ROOT files (see `mtt.stages.predict.stage`)."""
