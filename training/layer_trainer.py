"""The one training loop every model uses (the original module name; the code lives in
`training.trainer`)."""

from training.trainer.callbacks import EarlyStopping
from training.trainer.config import TrainingConfig, TrainingMetrics
from training.trainer.loop import LayerTrainer
from training.trainer.setup import seed_everything

__all__ = ["EarlyStopping", "LayerTrainer", "TrainingConfig", "TrainingMetrics", "seed_everything"]
