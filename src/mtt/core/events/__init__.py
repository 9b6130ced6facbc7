"""Events from ROOT files to feature rows: the schema mapping, the selection and the feature code that prepare
(training data) and predict (new data) share, so a model sees at prediction time what it saw in training."""
