"""Files this package writes and reads back: atomic writes, .npz arrays, model weights and sidecars.

`atomic` (every writer goes through `atomic_write`), `npz` (arrays and feature sets, sizes
checked before loading), `model_files` (a state_dict beside its JSON sidecar).
"""
