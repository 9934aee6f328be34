"""The one training loop (`LayerTrainer`) and its parts: configuration, set-up, steps, callbacks,
in-memory batches and the last-state checkpoint for `--resume`.
"""
