"""The layers: each one's whole slice (units, scaling, batches, training, pipeline stage)."""
