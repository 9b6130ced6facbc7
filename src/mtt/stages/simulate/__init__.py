"""`simulate` stage: Pythia 8 tt -> dilepton events, detector response, NanoAOD-style ROOT files (`stage.py`)."""
