"""`simulate` stage: Pythia 8 tt -> dilepton events, detector response, NanoAOD-style ROOT files (`stage.py`)."""

from mtt.stages.simulate.stage import (
    MANIFEST,
    ChunkJob,
    main,
    plan_chunks,
    run_simulation,
    simulate_chunk,
    simulate_chunk_on_worker,
)

__all__ = ["MANIFEST", "ChunkJob", "main", "plan_chunks", "run_simulation", "simulate_chunk",
           "simulate_chunk_on_worker"]
