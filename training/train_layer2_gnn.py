"""Train the layer-2 GNN (the script and module; the code lives in `training.layers`).

    python training/train_layer2_gnn.py --train_data ... --val_data ... --num_epochs 50
"""

import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:
    # Run as a script, sys.path[0] is training/, whose folders (datasets, ...) would shadow
    # top-level packages; the folder holding the package goes there instead.
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from training.cli.train import main as train_main
from training.detectors.gnn import Layer2GNN
from training.layers.layer2 import Layer2
from training.layers.training import train_layer2_gnn

__all__ = ["Layer2GNN", "default_config", "main", "train_layer2_gnn"]
default_config = Layer2().default_config


def main(argv: list[str] | None = None, *, callbacks: list | None = None) -> int:
    """The command line (see `training.cli.train`); `callbacks` go to the trainer."""
    return train_main("layer2", argv, prog=Path(__file__).name, callbacks=callbacks)


if __name__ == "__main__":
    sys.exit(main())
