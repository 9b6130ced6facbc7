"""`mtt study-doc`: a document's generated blocks, filled from (or checked against) the pipeline's outputs."""
