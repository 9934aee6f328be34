"""The parts of hyperparameter tuning: storages, workers, pruning, objectives and outputs.

The public entry points are `training.tuning.tuner.{TuningConfig, HyperparameterTuner}`.
(The folder is `hpo/`, not `tuning/`: `training/tuning/` is the default output folder, where
each study writes its files, and is ignored by git.)
"""
