"""Train the layer-3 TCN (the script and module; the code lives in `training.layers`).

    python training/train_layer3_tcn.py --train_data ... --val_data ... --num_epochs 50
"""

import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:
    # Run as a script, sys.path[0] is training/, whose folders (datasets, ...) would shadow
    # top-level packages; the folder holding the package goes there instead.
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from training.cli.train import main as train_main
from training.detectors.tcn import Layer3TCN
from training.layers.layer3 import Layer3
from training.layers.training import train_layer3_tcn

__all__ = ["Layer3TCN", "default_config", "main", "train_layer3_tcn"]
default_config = Layer3().default_config


def main(argv: list[str] | None = None, *, callbacks: list | None = None) -> int:
    """The command line (see `training.cli.train`); `callbacks` go to the trainer."""
    return train_main("layer3", argv, prog=Path(__file__).name, callbacks=callbacks)


if __name__ == "__main__":
    sys.exit(main())
