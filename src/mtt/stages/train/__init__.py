"""`train` stage: Keras regression of m_tt, every run fully logged to MLflow.

`stage.py` runs it (build, open the MLflow run, fit, commit); `paths.py` says where it reads and writes;
`inputs.py` opens and checks the splits once and hashes them (lineage); `data.py` reads the opened train split
(in memory, or streamed through tf.data); `fit.py` builds the network and runs the fit loop; `run.py` opens
the MLflow run and logs to it; `outputs.py` writes the model folder and the DVC outputs; `setup.py` builds the
optimizer and the tf.distribute strategy; `callbacks.py` holds the per-epoch logger and checkpointer;
`checkpoint.py` the resume state. The scaler is the one `validate` fitted on train (`data/reference`); it
becomes part of the model, so the saved model takes raw features and returns GeV.
"""
