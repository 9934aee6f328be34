"""What every `maximus-train` command shares: option spelling, `--source` parsing, error exits.

Exit codes: 0 success, 2 bad usage or configuration, 1 any other pipeline error (unreadable
input, inconsistent checkpoint).
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from training.collection.schema import LabelMap
from training.console.terminal import inert
from training.errors import ConfigError, NotFoundError, PipelineError, Terminated
from training.paths import models_dir
from training.cli.parser import did_you_mean
from training.sources.config import TYPE_ALIASES, DataSource, DataSourceType, source_type

if TYPE_CHECKING:
    from training.registry.registry import ModelRegistry

CLOSED_STDOUT = 141  # 128 + SIGPIPE: the status of a Unix tool whose reader went away

# Elasticsearch credentials and TLS settings come from the environment, never from flags (which
# other users of the machine can read in the process list).
ES_ENVIRONMENT = {"MAXIMUS_ES_API_KEY": "api_key", "MAXIMUS_ES_USERNAME": "username",
                  "MAXIMUS_ES_PASSWORD": "password", "MAXIMUS_ES_CA_CERTS": "ca_certs"}


def option(parser: argparse.ArgumentParser, name: str, **kwargs: object) -> None:
    """Add --some-name and its --some_name spelling."""
    flags = [name] + (["--" + name[2:].replace("-", "_")] if "-" in name[2:] else [])
    parser.add_argument(*flags, **kwargs)


def parse_source(spec: str, index: int, default_label: str | None,
                 environ: Mapping[str, str] = os.environ, flag: str = "--source") -> DataSource:
    """[NAME=]TYPE:PATH, e.g. zeek:/var/log/zeek or clean=csv:exports/*.csv; for Elasticsearch
    the PATH is a URL whose path is the index: es:https://es01:9200/logs-*,zeek-*. `flag`: the
    flag that gave it (--source, --input, --test-source), for the error."""
    name, _, rest = spec.rpartition("=") if "=" in spec.split(":", 1)[0] else ("", "", spec)
    kind, sep, path = rest.partition(":")
    if not sep or not path:
        raise ConfigError(f"{flag} must look like TYPE:PATH or NAME=TYPE:PATH, got {spec!r}")
    try:
        kind_type = source_type(kind)
    except ConfigError:
        names = sorted(TYPE_ALIASES)
        raise ConfigError(f"unknown source type {kind!r}{did_you_mean(kind, names)} in {spec!r}; "
                          f"use one of {', '.join(names)}") from None
    params = _es_params(path, environ) if kind_type is DataSourceType.ELASTIC else {"path": path}
    return DataSource(name=name or f"{kind}{index}", source_type=kind_type,
                      connection_params=params, default_label=default_label)


def parse_pairs(values: list[str] | None, what: str) -> dict[str, str]:
    """NAME=VALUE items (each flag may hold several, comma-separated) as a dict: the
    --field-map and --label-map flags."""
    pairs: dict[str, str] = {}
    for value in values or ():
        for item in value.split(","):
            key, sep, target = item.partition("=")
            if not sep or not key.strip() or not target.strip():
                raise ConfigError(f"{what} takes NAME=VALUE pairs (e.g. source_ip=src,dest_ip="
                                  f"dst), got {item!r}")
            pairs[key.strip()] = target.strip()
    return pairs


def source_options(sources: list[DataSource], *, column_names: str | None = None,
                   field_map: list[str] | None = None, label_map: list[str] | None = None
                   ) -> list[DataSource]:
    """The sources with the column names (csv sources: a preset such as nsl_kdd or a,b,c; the
    file then has no header line), the field map and the label map given on the command line:
    the same settings as `column_names`, `field_map` and `label_map` of a TOML [[sources]].

    Raises:
        ConfigError: --column-names without a csv source, or a malformed pair.
    """
    from training.pipeline.checks import with_columns

    fields = parse_pairs(field_map, "--field-map")
    labels = {text: _label_value(value) for text, value in parse_pairs(label_map,
                                                                       "--label-map").items()}
    csv = [s for s in sources if s.source_type is DataSourceType.CSV_FILE]
    if column_names is not None and sources and not csv:
        raise ConfigError("--column-names names the columns of header-less CSV files; none of "
                          "the --source inputs is csv:")
    for source in sources:
        if fields:
            source.field_map = {**(source.field_map or {}), **fields}
        if column_names is not None and source in csv:
            source.field_map = with_columns(source.connection_params, column_names,
                                            source.field_map)
        if labels:
            source.label_map = LabelMap({**source.label_map.overrides, **labels})
    return sources


def _label_value(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value not in (-1, 0, 1):
        raise ConfigError(f"--label-map maps label text to -1 (unknown), 0 (benign) or 1 "
                          f"(threat), got {text!r}")
    return value


def _es_params(url: str, environ: Mapping[str, str]) -> dict:
    """hosts and index from es:SCHEME://HOST:PORT/INDEX, credentials from the environment."""
    scheme, _, rest = url.partition("://")
    host, _, index = rest.partition("/")
    if not scheme or not host or not index:
        raise ConfigError("an Elasticsearch --source looks like es:https://es01:9200/logs-* "
                          "(the URL path is the index, alias or pattern)")
    params: dict = {"hosts": f"{scheme}://{host}", "index": index}
    params.update({key: environ[var] for var, key in ES_ENVIRONMENT.items() if environ.get(var)})
    verify = environ.get("MAXIMUS_ES_VERIFY_CERTS", "").strip().lower()
    if verify:
        params["verify_certs"] = verify not in ("0", "false", "no")
    return params


@contextmanager
def terminated_as_interrupt() -> Iterator[None]:
    """For the block, SIGTERM raises `Terminated` in the main thread, as SIGINT raises
    KeyboardInterrupt: a command stopped by `kill` died without unwinding, its MLflow run left
    RUNNING forever and its run history without a word (trial V)."""
    # Not outside the main thread (Python runs handlers there), nor over a handler not set
    # from Python (None: an embedding host's own).
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is None:
        yield
        return

    def terminate(signum: int, frame: object) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def exit_code(run: Callable[[], int], verbose: bool = False,
              flags: Mapping[str, str] | None = None) -> int:
    """`run()`, with every error printed as one `error:` line on stderr and turned into an exit
    code: 2 a bad configuration or argument (`ConfigError`), 1 anything else: another
    `PipelineError`, an `OSError` (the line names the path and the cause: "No space left on
    device", "Permission denied"), an unexpected exception (a bug: the line says so), 130 an
    interrupt (with what the command kept, when its KeyboardInterrupt says so), 143 SIGTERM
    (`terminated_as_interrupt`). `verbose`
    prints the traceback above the line. A reader that closed stdout
    early (`| head -1`) ends the command quietly with 141, as SIGPIPE ends Unix tools.
    `flags` (`typed_flags(args)`): a message about a parameter names the flag typed for it."""
    try:
        with terminated_as_interrupt():  # every command line: maximus-train and the scripts
            code = run()
            sys.stdout.flush()  # a closed pipe fails here, not in the interpreter's last flush
        return code
    except BrokenPipeError as exc:
        if not stdout_closed():  # another pipe (a socket, a child process): an error
            _traceback(verbose)
            print(f"error: {inert(os_error(exc))}", file=sys.stderr)
            return 1
        silence_stdout()
        return CLOSED_STDOUT
    except KeyboardInterrupt as exc:  # a command may say what it kept (`collect`)
        _traceback(verbose)
        what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        print(f"error: {what}" + (f": {inert(str(exc))}" if str(exc) else ""), file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    except Exception as exc:  # one line, a traceback only with -v, as promised to cron and CI
        _traceback(verbose)
        print(f"error: {inert(error_message(exc, hint=not verbose, flags=flags))}",
              file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1


def error_message(exc: Exception, *, hint: bool = False,
                  flags: Mapping[str, str] | None = None) -> str:
    """The `error:` line's text for `exc`: a PipelineError's message (naming the flag of a
    parameter, see `name_flags`), an OSError's path and cause, else an unexpected exception,
    called a bug (`hint`: "rerun with -v" too)."""
    if isinstance(exc, PipelineError):
        return name_flags(str(exc), flags or {})
    if isinstance(exc, OSError):
        return os_error(exc)
    more = "; rerun with -v for the traceback" if hint else ""
    return f"unexpected {type(exc).__name__}: {exc} (a bug{more})"


# The library's name of a parameter (or the subject of its message) -> the dest of the flag
# that sets it, where they differ or the message goes on otherwise than "NAME must ...".
PARAMETER_FLAGS = {
    "num_epochs": "epochs", "train.epochs": "epochs", "train.batch_size": "batch_size",
    "learning_rate": "lr", "train.learning_rate": "lr", "random_seed": "seed",
    "early_stopping_patience": "patience", "alert_rate_factor": "alert_factor",
    "the alert-rate factor": "alert_factor", "the maximum alert rate": "max_alert_rate",
    "min_accuracy_threshold": "min_accuracy", "top_k": "top", "train_until": "train_until",
    "train.keep_unknown": "keep_unknown", "train.benign_only": "benign_only",
}


def name_flags(message: str, flags: Mapping[str, str]) -> str:
    """`message` with the parameter it starts with ("num_epochs must be >= 1, got 0") named
    by the flag the user typed for it ("--epochs must be >= 1, got 0"); unchanged when the
    value came from elsewhere (a TOML file, a default) or the message is about no parameter.

    Args:
        message: an error message of the library.
        flags: {dest: flag as typed} (`training.cli.parser.typed_flags`).
    """
    for name in sorted({*flags, *PARAMETER_FLAGS}, key=len, reverse=True):
        rest = message[len(name):]
        if not message.startswith(name) or rest[:1] not in ("", " ", ","):
            continue
        if name not in PARAMETER_FLAGS and not rest.startswith(" must "):
            continue  # a flag's dest at the start of another message ("source ... failed")
        for dest in (name, PARAMETER_FLAGS.get(name)):
            if dest in flags:
                return flags[dest] + rest
    return message


def stdout_closed() -> bool:
    """True when stdout is a pipe whose reader has gone (`maximus-train ... | head -1`)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # no file behind it (replaced, or closed)
        return False
    if not hasattr(select, "poll"):  # Windows: no way to tell, so it stays an error
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    # A pipe's write end polls POLLERR once its last reader is closed.
    return any(events & select.POLLERR for _, events in poller.poll(0))


def silence_stdout() -> None:
    """Point stdout at /dev/null: what is still buffered for the closed pipe goes nowhere,
    and the interpreter's last flush has nothing to complain about."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


def os_error(exc: OSError) -> str:
    """An OSError as "PATH: cause" ("PATH -> PATH2: cause" for a rename)."""
    cause = exc.strerror or str(exc)
    if exc.filename is None:
        return cause
    where = os.fsdecode(exc.filename)
    if isinstance(exc, FileExistsError) and not os.path.isdir(where):
        cause += ", and is not a folder"  # mkdir(exist_ok=True) on a file's name
    if exc.filename2 is not None:
        where += f" -> {os.fsdecode(exc.filename2)}"
    return f"{where}: {cause}"


def _traceback(verbose: bool) -> None:
    if verbose:
        traceback.print_exc(file=sys.stderr)


def layer_name(text: str) -> str:
    """A layer's canonical name from any of its names (layer2, 2, layer2_behavioral), for
    argparse `type=`; the layers are imported only when the flag is used."""
    from training.layers.registry import get_layer

    try:
        return get_layer(text).name
    except PipelineError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def registry_options(parser: argparse.ArgumentParser, option: Callable[..., None]) -> None:
    """--registry-dir and --workdir (one of them): where a command finds the model registry."""
    where = parser.add_mutually_exclusive_group()
    option(where, "--registry-dir", type=Path,
           help="the model registry (default: $MAXIMUS_DATA_ROOT/models, now "
                f"{models_dir()}; a pipeline's is WORKDIR/models)")
    option(where, "--workdir", type=Path,
           help="a pipeline's working directory: use its registry, WORKDIR/models")


def registry_dir(args: argparse.Namespace) -> Path:
    """The registry a command uses: --registry-dir, else --workdir/models, else
    $MAXIMUS_DATA_ROOT/models (training/models). `pipeline` alone uses <workdir>/models."""
    if getattr(args, "registry_dir", None) is not None:
        return Path(args.registry_dir)
    if getattr(args, "workdir", None) is not None:
        return Path(args.workdir) / "models"
    return models_dir()


def open_registry(args: argparse.Namespace, *, create: bool = False) -> ModelRegistry:
    """The registry of `registry_dir(args)`. One that is read must exist; where it does not,
    the error says where one is (`registry_hint`).

    Raises:
        NotFoundError: not `create`, and there is no registry there.
    """
    from training.registry.registry import ModelRegistry

    try:
        return ModelRegistry(registry_dir(args), create=create)
    except NotFoundError as exc:
        raise NotFoundError(f"{exc}{registry_hint(args)}") from None


def registry_hint(args: argparse.Namespace) -> str:
    """Where the registry the user meant may be, for a missing one: a pipeline's workdir given
    as --registry-dir (its registry is DIR/models), a registry given as --workdir, or no
    flag at all (the default folder)."""
    given, workdir = getattr(args, "registry_dir", None), getattr(args, "workdir", None)
    if given is not None and (Path(given) / "models" / "registry.db").is_file():
        return (f"; did you mean --workdir {given}? ({Path(given) / 'models'} holds one: a "
                "pipeline's workdir keeps its registry in models/)")
    if workdir is not None and (Path(workdir) / "registry.db").is_file():
        return f"; did you mean --registry-dir {workdir}? (it holds one itself)"
    if given is None and workdir is None:
        return ("; a pipeline's registry is WORKDIR/models: give --workdir WORKDIR (or "
                "--registry-dir DIR, or set MAXIMUS_DATA_ROOT)")
    return ""


def sources_from_flags(args: argparse.Namespace, specs: list[str] | None,
                       flag: str = "--source") -> list[DataSource]:
    """The values of `flag` (--source, --test-source, --input) as DataSources, with the column,
    field and label maps."""
    sources = [parse_source(s, i, args.default_label, flag=flag)
               for i, s in enumerate(specs or [])]
    return source_options(sources, column_names=args.column_names, field_map=args.field_map,
                          label_map=args.label_map)


def source_flags(parser: argparse.ArgumentParser, option: Callable[..., None]) -> None:
    """How sources are read: the same settings as a TOML [[sources]] entry's."""
    option(parser, "--default-label",
           help="label for records without one, e.g. benign (default: none, is_threat -1)")
    option(parser, "--column-names", metavar="PRESET|A,B,...",
           help="the columns of header-less CSV files: a preset (nsl_kdd) or names separated "
                "by commas (the csv: sources then have no header line; default: a header)")
    option(parser, "--field-map", action="append", metavar="CANONICAL=FIELD,...",
           help="where canonical fields come from, e.g. source_ip=src,dest_ip=dst (repeatable; "
                "default: the source type's own map)")
    option(parser, "--label-map", action="append", metavar="TEXT=-1|0|1,...",
           help="what label texts mean, e.g. Background=0 (repeatable; default: benign/normal "
                "0, background/unknown -1, anything else 1)")
