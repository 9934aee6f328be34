"""Train the layer-1 VAE (the original script and module; the code lives in `training.layers`).

    python training/train_layer1_vae.py --train_data ... --val_data ... --num_epochs 100
"""

import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:
    # Run as a script, sys.path[0] is training/, whose folders (datasets, ...) would shadow
    # top-level packages; the folder holding the package goes there instead.
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from training.cli.train import main as train_main
from training.compat.train_layer1_vae import read_split, train_layer1_vae
from training.detectors.vae import Layer1VAE
from training.layers.layer1 import Layer1

__all__ = ["Layer1VAE", "default_config", "main", "read_split", "train_layer1_vae"]
default_config = Layer1().default_config


def main(argv: list[str] | None = None, *, callbacks: list | None = None) -> int:
    """The command line (see `training.cli.train`); `callbacks` go to the trainer."""
    return train_main("layer1", argv, prog=Path(__file__).name, callbacks=callbacks)


if __name__ == "__main__":
    sys.exit(main())
