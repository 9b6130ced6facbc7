"""`train` stage: Keras regression of m_tt, every run fully logged to MLflow.

`stage.py` runs it (set up, start the MLflow run, fit, finish, write); `data.py` reads the prepared splits
(in memory, or streamed through tf.data); `setup.py` builds the optimizer and the tf.distribute strategy;
`callbacks.py` holds the per-epoch logger and checkpointer; `checkpoint.py` the resume state. The scaler
is the one `validate` fitted on train (`data/reference`); it becomes part of the model, so the saved model
takes raw features and returns GeV.
"""
