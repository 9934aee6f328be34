"""The training command line of every layer: `python training/train_layer1_vae.py ...` and
`maximus-train train LAYER ...`.

    python training/train_layer1_vae.py --train_data training/data/splits/layer1_train.npz \\
        --val_data training/data/splits/layer1_val.npz --num_epochs 100 --batch_size 32

The flags are the same for every layer (data, loop, checkpoints, device), each also accepted
with '-' for '_', plus the layer's detector arguments (`Layer.model_options`); defaults are the
layer's own (`Layer.default_config`). The run writes `<checkpoint_dir>/<model_name>_best.pt` (a
plain state_dict) and `.json` (class, constructor arguments, the fitted FeatureSpec, the
threshold calibrated on the validation split, sha256), `<model_name>_last_state.pt` for
`--resume`, and TensorBoard scalars under `<log_dir>/<model_name>`. `torchrun --nproc-per-node
N training/train_layer1_vae.py ...` trains on N processes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Sequence
from typing import Any

from training.cli.options import exit_code
from training.cli.output import command_output
from training.cli.parser import CommandParser, Switch, add_global_flags, typed_flags
from training.errors import ConfigError
from training.layers.base import Layer
from training.layers.registry import get_layer
from training.layers.training import train_layer
from training.paths import checkpoints_dir, logs_dir
from training.trainer.callbacks import Callback
from training.trainer.config import TrainingConfig

TRAIN_ON = {"auto": None, "benign": True, "all": False}


def add_flag(parser: argparse.ArgumentParser, name: str, **kwargs: Any) -> None:
    """`--name`, also as `--na-me` when the name has underscores."""
    names = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
    if kwargs.get("action") is argparse.BooleanOptionalAction:
        kwargs["action"] = Switch  # --no-name also as --no_name
    parser.add_argument(*names, dest=name, **kwargs)


def build_parser(layer: Layer, prog: str) -> argparse.ArgumentParser:
    """The command line of `layer`'s training script (see the module docstring)."""
    parser = CommandParser(prog=prog, description=f"Train the {layer.name} detector "
                                                  f"({layer.model_name}) on {layer.unit}s.")
    add_arguments(parser, layer)
    add_global_flags(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser, layer: Layer) -> None:
    """The flags of `layer`'s training command, on `parser` (a script's or `maximus-train
    train LAYER`'s)."""
    base = layer.default_config()
    unit = f"{layer.unit}s"
    flag = lambda name, **kw: add_flag(parser, name, **kw)  # noqa: E731
    flag("train_data", required=True, help="training data (.npz split or features file)")
    flag("val_data", default=None,
         help="validation data: picks the best epoch and calibrates the anomaly threshold "
              "(default: none; the training loss picks the epoch)")
    flag("num_epochs", type=int, default=base.num_epochs, help="epochs at most")
    flag("batch_size", type=int, default=base.batch_size, help="training batch size")
    flag("learning_rate", type=float, default=base.learning_rate, help="optimizer step size")
    flag("params", default=None, metavar="FILE",
         help=f"tuned hyperparameters: a best_params.json of `tune --layer {layer.name}` (or a "
              "JSON object of them); they replace the defaults, the flags given here win "
              "(default: none)")
    flag("detector", choices=layer.detector_names(), default=layer.detector_name,
         help=f"the detector to train: the layer's own ({layer.detector_name}, whose arguments "
              "are the flags below) or a row detector")
    flag("detector_arg", action="append", default=[], metavar="NAME=VALUE",
         help="an argument of the chosen detector (repeatable; VALUE is JSON or text), e.g. "
              "n_estimators=100, inputs=edge_context")
    for name, options in layer.model_options.items():
        flag(name, **options)
    flag("amp", choices=("auto", "off", "fp16", "bf16"), default="auto",
         help="mixed precision: auto = fp16 with GradScaler on CUDA, off on the CPU; "
              "bf16 also works on the CPU")
    flag("device", default="auto", help="auto, cpu, cuda or cuda:N")
    flag("seed", type=int, default=42, help="seed of the weights and the batch order")
    flag("resume", action="store_true",
         help="continue from <checkpoint_dir>/<model_name>_last_state.pt when it exists")
    flag("deterministic", action="store_true", help="deterministic algorithms only")
    flag("num_threads", type=int, default=1,
         help="torch intra-op threads (1 suits these small models; 0 = torch's default)")
    flag("checkpoint_dir", default=str(checkpoints_dir()),
         help="where the checkpoints go ($MAXIMUS_DATA_ROOT/checkpoints)")
    flag("log_dir", default=str(logs_dir()),
         help="where TensorBoard scalars go ($MAXIMUS_DATA_ROOT/logs)")
    flag("model_name", default=base.model_name, help="checkpoint file name stem")
    parser.add_argument("--patience", "--early_stopping_patience", "--early-stopping-patience",
                        dest="patience", type=int, default=base.early_stopping_patience,
                        help="early-stopping patience in epochs (0 = off)")
    flag("optimizer", choices=("adam", "adamw", "sgd"), default=base.optimizer,
         help="optimizer")
    flag("lr_scheduler", choices=("reduce_on_plateau", "cosine", "step", "none"),
         default=base.lr_scheduler, help="learning-rate schedule")
    flag("train_on", choices=tuple(TRAIN_ON), default="auto",
         help=f"auto: the benign {unit} when there are any (unknown is never benign), else all "
              "of them (unlabeled data)")
    flag("no_tensorboard", action="store_true", help="write no TensorBoard scalars")
    flag("mlflow_uri", default=None, help="also log the run to MLflow there (default "
         "$MLFLOW_TRACKING_URI, else not; needs the mlflow extra)")


def training_config(args: argparse.Namespace, base: TrainingConfig) -> TrainingConfig:
    """`base` with the flags' values."""
    if args.amp == "fp16" and args.device == "cpu":
        raise ConfigError("--amp fp16 needs CUDA (it uses a GradScaler); use --amp bf16 on "
                          "the CPU")
    return base.replace(
        model_name=args.model_name, num_epochs=args.num_epochs, batch_size=args.batch_size,
        learning_rate=args.learning_rate, device=args.device, seed=args.seed,
        deterministic=args.deterministic, num_threads=args.num_threads or None,
        checkpoint_dir=args.checkpoint_dir, log_dir=args.log_dir,
        early_stopping_patience=args.patience, optimizer=args.optimizer,
        lr_scheduler=args.lr_scheduler, tensorboard=not args.no_tensorboard,
        use_amp=args.amp in ("auto", "fp16", "bf16"),
        amp_dtype="bfloat16" if args.amp == "bf16" else "float16", cpu_amp=args.amp == "bf16")


def detector_args(layer: Layer, args: argparse.Namespace) -> dict[str, Any]:
    """The `model_args` of `train_layer` the flags ask for: the layer's own detector with its
    flags, or another detector with its `--detector-arg`s."""
    extra = {}
    for item in args.detector_arg:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"--detector-arg takes NAME=VALUE, got {item!r}")
        try:
            extra[name] = json.loads(text)
        except ValueError:
            extra[name] = text
    if args.detector == layer.detector_name:
        return {**{name: getattr(args, name) for name in layer.model_options}, **extra}
    changed = [name for name, options in layer.model_options.items()
               if getattr(args, name) != options.get("default")]
    if changed:
        raise ConfigError(f"--{changed[0]} is an argument of {layer.detector_name}, not of "
                          f"{args.detector}; pass that detector's with --detector-arg")
    return {"detector": args.detector, **extra}


def with_params(layer: Layer, args: argparse.Namespace, config: TrainingConfig,
                model_args: dict[str, Any], show: bool = True
                ) -> tuple[TrainingConfig, dict[str, Any]]:
    """`config` and `model_args` with the hyperparameters of `--params FILE` where no flag set
    them (`training.tuning.params_file`), and the file recorded as `params_from`; `show`
    prints one line saying which were taken."""
    from training.tuning.params_file import TRAINING_KEYS, read_params

    if args.detector != layer.detector_name:
        raise ConfigError(f"--params holds hyperparameters of {layer.name}'s own detector "
                          f"({layer.detector_name}), not of --detector {args.detector}; leave "
                          "one of them out")
    tuned = read_params(args.params, layer)
    flags = typed_flags(args)
    flags.update({item.partition("=")[0]: "--detector-arg" for item in args.detector_arg})
    taken = tuned.unless(set(flags))
    config = config.replace(**{k: v for k, v in taken.items() if k in TRAINING_KEYS},
                            params_from=tuned.origin)
    model_args = {**model_args, **{k: v for k, v in taken.items() if k not in TRAINING_KEYS}}
    if show:
        kept = [flags[name] for name in tuned.values if name in flags]
        print(f"hyperparameters from {tuned.origin}: "
              f"{', '.join(f'{k}={v}' for k, v in taken.items()) or 'none'}"
              + (f"; {', '.join(kept)} given, the flag wins" if kept else ""))
    return config, model_args


def main(layer_name: str, argv: Sequence[str] | None = None, *, prog: str | None = None,
         callbacks: list[Callback] | None = None) -> int:
    """Train `layer_name`'s detector from the command line `argv`; `callbacks` go to the
    trainer (for tests and wrappers)."""
    layer = get_layer(layer_name)()
    try:
        args = build_parser(layer, prog or f"train {layer.name}").parse_args(argv)
    except SystemExit as exit_:  # --help, or a usage error already printed on one line
        return exit_.code if isinstance(exit_.code, int) else 2
    with command_output(args.verbose, args.quiet):
        return exit_code(lambda: run(layer, args, callbacks), args.verbose, typed_flags(args))


def run(layer: Layer, args: argparse.Namespace, callbacks: list[Callback] | None = None) -> int:
    """Train as `args` say; print the summary (process 0 of a torchrun only)."""
    rank0 = os.environ.get("RANK", "0") == "0"
    if not rank0:  # one log per run: the other processes log warnings only
        logging.getLogger().setLevel(logging.WARNING)
    trained = False
    try:
        config = training_config(args, layer.default_config())
        model_args = detector_args(layer, args)
        if args.params is not None:
            config, model_args = with_params(layer, args, config, model_args, rank0)
        train = layer.load_units(args.train_data)
        val = layer.load_units(args.val_data) if args.val_data else None
        with _tracked(layer, args.mlflow_uri if rank0 else None) as tracked:
            _, results = train_layer(layer, train, val, config, model_args=model_args,
                                     benign_only=TRAIN_ON[args.train_on], resume=args.resume,
                                     callbacks=[*(callbacks or ()), *tracked.callbacks])
            tracked.finish_training(results)
        trained = True
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            if trained:  # leave together: a process that tears the group down while another
                dist.barrier()  # still talks to it can abort that one (gloo, SIGABRT at exit)
            dist.destroy_process_group()
    if rank0:
        print_results(results, f"{layer.unit}s")
        left_out = rows_left_out(layer.labels(train), results["train_units"], layer.unit)
        if left_out:
            print(left_out)
    return 0


def rows_left_out(labels: Any, learnt: int, unit: str) -> str | None:
    """The line saying which training rows benign-only training left out; None when it
    learnt from every one."""
    total = len(labels)
    if learnt >= total:
        return None
    threat, unknown = int((labels == 1).sum()), int((labels < 0).sum())
    parts = [f"{n:,} {what}" for n, what in ((threat, "threat"), (unknown, "unlabeled")) if n]
    return (f"trained on {learnt:,} benign {unit}s of {total:,}: {' and '.join(parts)} "
            f"{'row was' if total - learnt == 1 else 'rows were'} left out (benign-only "
            "training); --train_on all keeps them")


def _tracked(layer: Layer, uri: str | None) -> Any:
    """The MLflow run of this training run (does nothing without an MLflow URI)."""
    from training.tracking import LayerRun, open_window, tracking_uri

    window = open_window(uri) if tracking_uri(uri) else None
    return LayerRun.start(window, f"train {layer.name}", {"maximus.layer": layer.name,
                                                          "maximus.model": layer.model_name})


def print_results(results: dict[str, Any], units: str) -> None:
    """The summary of a training run (stdout)."""
    threshold = results["threshold"]
    # the kept epoch's monitored value, named as the progress lines name it ("loss" is training's)
    monitor = results.get("monitor", "val_loss")
    print(f"trained {results['epochs_trained']} epochs on {results['train_units']} {units} in "
          f"{results['train_time_s']:.1f} s; best epoch {results['best_epoch']} "
          f"({'loss' if monitor == 'train_loss' else monitor} {results['best_val_loss']:.6g})")
    if threshold:
        print(f"anomaly threshold {threshold['value']:.6g} ({threshold['method']})")
    print(f"model: {results['checkpoint']}")
