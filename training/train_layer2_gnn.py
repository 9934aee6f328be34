"""Train the layer-2 GNN: `train_layer2_gnn(...)` and `python training/train_layer2_gnn.py`.

    python training/train_layer2_gnn.py \\
        --train_data training/data/splits/layer2_train.npz \\
        --val_data training/data/splits/layer2_val.npz --num_epochs 50 --batch_size 32

The data files are window graphs saved by `Layer2Graphs.save` (one `Data` per window). The run
writes `training/checkpoints/layer2_gnn_best.pt` (a plain state_dict) and `layer2_gnn_best.json`
(class, constructor arguments, the FeatureSpec with the node and edge scaling fitted on the
training graphs, the anomaly threshold calibrated on the validation edges, sha256), plus
`layer2_gnn_last_state.pt` for `--resume` and TensorBoard scalars under `training/logs/layer2_gnn`.
Every flag is also accepted with '-' for '_'.

Labels: the GNN is a semi-supervised edge detector. By default (`benign_only=None`) the loss
counts the benign edges (edge_y 0) when there are any, and every edge of unlabeled data
otherwise; edges of threats and unknown (Background) traffic are never learnt as normal. The
validation graphs keep every edge: their benign edges' loss picks the best epoch and all their
labels set the threshold.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: sys.path[0] is training/, not the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from training.callbacks import Callback
from training.detectors.gnn import Layer2GNN
from training.errors import PipelineError
from training.features.layer2_graphs import Layer2Graphs
from training.layer2_data import Layer2Data, fit_layer2_scaling
from training.layer_trainer import LayerTrainer, TrainingConfig, seed_everything
from training.train_flags import (
    TRAIN_ON, add_flag, add_training_flags, benign_units, print_results, training_config,
)

__all__ = ["Layer2GNN", "default_config", "train_layer2_gnn"]

logger = logging.getLogger(__name__)


def default_config(**changes: Any) -> TrainingConfig:
    """The layer-2 GNN's TrainingConfig (model_name "layer2_gnn", 32 windows per batch)."""
    base = TrainingConfig(model_name="layer2_gnn", layer_name="layer2", seed=42, batch_size=32,
                          num_epochs=50, learning_rate=3e-3)
    return base.replace(**changes)


def train_layer2_gnn(train_graphs: Layer2Graphs, val_graphs: Layer2Graphs | None = None,
                     config: TrainingConfig | None = None, *, hidden_dim: int = 64,
                     num_layers: int = 2, conv: str = "gat", dropout: float = 0.1,
                     model_args: dict[str, Any] | None = None, benign_only: bool | None = None,
                     resume: bool | str | Path = False, callbacks: list[Callback] | None = None,
                     ) -> tuple[Layer2GNN, dict[str, Any]]:
    """Train a Layer2GNN; returns (model with the best epoch's weights, results).

    Args:
        train_graphs: training window graphs.
        val_graphs: validation graphs of the same transform (best epoch, threshold); None
            trains without validation (best = lowest training loss, no threshold).
        config: TrainingConfig; default `default_config()` (checkpoints as layer2_gnn_*).
        hidden_dim, num_layers, conv, dropout: the model's sizes and convolution.
        model_args: further Layer2GNN arguments (directed, existence_weight, supervised).
        benign_only: None = learn from benign edges when there are any, else from all;
            True/False force it.
        resume: as `LayerTrainer.train`.
        callbacks: extra callbacks (e.g. Optuna pruning).

    Returns:
        (model, results) with results: best_val_loss, best_epoch, epochs_trained,
        final_train_loss, threshold (dict or None), checkpoint, feature_spec (the model's
        FeatureSpec), train_units (edges learnt from), history, train_time_s.

    Raises:
        SchemaError: the validation graphs were made with another transform.
        ConfigError: nothing to learn from, or an invalid model argument.
    """
    config = config if config is not None else default_config()
    benign = benign_units(train_graphs.arrays["edge_y"], benign_only)
    spec = fit_layer2_scaling(train_graphs, benign_only=benign)
    train = Layer2Data(train_graphs, spec, benign_only=benign)
    val = Layer2Data(val_graphs, spec, benign_only=benign) if val_graphs is not None else None
    if config.seed is not None:
        seed_everything(config.seed)  # the model's initial weights follow the seed
    model = Layer2GNN(node_dim=train.node_dim, edge_dim=train.edge_dim, hidden_dim=hidden_dim,
                      num_layers=num_layers, conv=conv, dropout=dropout, **(model_args or {}))
    trainer = LayerTrainer(model, config=config, callbacks=callbacks or (), feature_spec=spec)
    logger.info("training on %d %s edges of %d windows", train.fit_edges,
                "benign" if benign else "(all)", len(train))
    start = time.perf_counter()
    history = trainer.train(
        train.batches(config.batch_size, shuffle=True, training=True, **trainer.shard_options()),
        val.batches(config.batch_size) if val is not None else None,
        val_labels=val.labels() if val is not None else None, resume=resume)
    results = {
        **trainer.results(history),
        "feature_spec": spec,
        "train_units": train.fit_edges,
        "train_time_s": time.perf_counter() - start,
    }
    return model, results


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train_layer2_gnn.py", description="Train the layer-2 GNN edge anomaly detector.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_training_flags(parser, model_name="layer2_gnn", num_epochs=50, batch_size=32,
                       learning_rate=3e-3, units="windows")
    add_flag(parser, "hidden_dim", type=int, default=64)
    add_flag(parser, "num_layers", type=int, default=2, help="message-passing layers")
    add_flag(parser, "conv", choices=("gat", "sage"), default="gat",
             help="GATv2 attention that also reads the edge features, or GraphSAGE")
    add_flag(parser, "dropout", type=float, default=0.1)
    add_flag(parser, "existence_weight", type=float, default=1.0,
             help="weight of the link-existence loss and score")
    add_flag(parser, "undirected", action="store_true",
             help="symmetric decoder: ignore which end started a connection")
    add_flag(parser, "supervised", action="store_true",
             help="add a P(threat) head trained on the edge labels; it gives the score")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        config = training_config(args, default_config())
        train = Layer2Graphs.load(args.train_data)
        val = Layer2Graphs.load(args.val_data, train.spec) if args.val_data else None
        _, results = train_layer2_gnn(
            train, val, config, hidden_dim=args.hidden_dim, num_layers=args.num_layers,
            conv=args.conv, dropout=args.dropout, benign_only=TRAIN_ON[args.train_on],
            model_args={"existence_weight": args.existence_weight,
                        "directed": not args.undirected, "supervised": args.supervised},
            resume=args.resume)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        print_results(results, "edges")
    return 0


if __name__ == "__main__":
    sys.exit(main())
