"""The captures of the detection harness: what each detector fits on, is validated on, scores.

Every capture is a protocol over real files of `../shared/datasets` (or the demo generator):
detectors fit on benign rows only (is_threat 0; Background/unknown is never benign), the last
20% of each fitting source by time held out for validation (early stopping, thresholds: benign
rows only, so no label of a scored row is ever seen), and score every row of the test part.

| capture | role | fit on | scores |
|---|---|---|---|
| iot23-42 | development | IoT-23 honeypots 4-1, 5-1, 7-1 + the benign rows of 44-1 | 42-1 (Trojan) |
| iot23-44 | development | the honeypots + the benign rows of 42-1 | 44-1 (Mirai) |
| demo | development | the demo events' first half (by time), benign rows | the second half |
| iot23-20 | evaluation | the honeypots + the benign rows of 21-1 | 20-1 (Torii) |
| iot23-21 | evaluation | the honeypots + the benign rows of 20-1 | 21-1 (Torii) |
| strat-011-to-008 | evaluation | stratosphere 011's benign flows, direction-blind | 008, direction-blind |
| strat-008-to-011 | evaluation | 008's benign flows, direction-blind | 011, direction-blind |
| nsl-kdd | evaluation | half of KDDTrain+_20Percent's normal rows | the other half + every attack |

Development captures are for choosing (features, detectors, settings); evaluation captures are
never used for choosing. NSL-KDD: the split of the normal rows is fixed (`NSL_SEED`); its fit
half (`nsl_kdd_fit_half`) belongs to development, for fitting and feature checks only, never for
measuring detection. The test rows whose `difficulty` is below 21 (those at least one of the 21
classifiers of the NSL-KDD paper missed) are also reported apart; the difficulty column is
removed from the events before anything else sees them, so it is never a feature. NSL-KDD rows
have no addresses or times, so only layer 1 applies. Direction-blind: see `blind`.

A name that is a path (a labeled Zeek log or folder, a labeled CSV) is a capture of your own,
measured with the demo's protocol (`own`); `Capture`, `benign` and `time_split` are in
`protocol`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.collection.collector import DataCollector, DataSource
from training.errors import ConfigError, SourceError
from training.evaluation.harness.blind import direction_blind
from training.evaluation.harness.own import is_own, own_capture
from training.evaluation.harness.protocol import VAL_FRACTION, Capture, benign, time_split
from training.sources.presets import NSL_KDD_COLUMNS as NSL_COLUMNS
from training.sources.presets import NSL_KDD_FIELDS as NSL_FIELDS

DATASETS = Path("../shared/datasets")  # relative to the working directory (the repository root)
HONEYPOTS = tuple(f"iot23/CTU-Honeypot-Capture-{k}-labeled.csv" for k in ("4-1", "5-1", "7-1"))
IOT23 = {k: f"iot23/CTU-Malware-Capture-{k}-1-labeled.csv" for k in ("20", "21", "42", "44")}
CONN = "stratosphere/{}-zeek-mixed/data/conn.log.labeled"
NSL_KDD = "nsl_kdd/KDDTrain+_20Percent.txt"
NSL_SEED = 20  # fixes the NSL-KDD split once; never changed to move a figure
NSL_HARD = 21  # test rows with difficulty below this are reported apart


def collect(root: Path, relative: str, **source_args) -> pa.Table:
    """The canonical events of one dataset file under `root`."""
    path = Path(root) / relative
    if not path.is_file():
        raise SourceError(f"{path}: not found (the harness reads ../shared/datasets, or "
                          "--datasets)")
    kind = "csv_file" if path.suffix in (".csv", ".txt") else "zeek_logs"
    params = {"path": str(path), **source_args.pop("connection_params", {})}
    return DataCollector([DataSource(path.stem, kind, params, **source_args)],
                         progress=False).collect_table()


def _iot23(root: Path, scored: str, other: str, role: str) -> Capture:
    fit = [benign(collect(root, path)) for path in HONEYPOTS]
    fit.append(benign(collect(root, IOT23[other])))
    train, val = time_split(fit)
    return Capture(f"iot23-{scored}", role, f"IoT-23 honeypots + {other}-1 benign -> {scored}-1",
                   train, val, collect(root, IOT23[scored]))


def _strat(root: Path, fit: str, scored: str) -> Capture:
    train, val = time_split([direction_blind(benign(collect(root, CONN.format(fit))))])
    return Capture(f"strat-{fit}-to-{scored}", "evaluation",
                   f"stratosphere {fit} benign -> {scored}, direction-blind", train, val,
                   direction_blind(collect(root, CONN.format(scored))))


def nsl_kdd_table(root: Path) -> tuple[pa.Table, np.ndarray]:
    """KDDTrain+_20Percent's events without the difficulty column, and that column apart."""
    table = collect(root, NSL_KDD, field_map=NSL_FIELDS,
                    connection_params={"has_header": False, "column_names": list(NSL_COLUMNS)})
    difficulty = table["difficulty"].to_numpy(zero_copy_only=False).astype(np.int64)
    return table.drop_columns(["difficulty"]), difficulty


def nsl_kdd_split(labels: np.ndarray, seed: int = NSL_SEED) -> tuple[np.ndarray, np.ndarray,
                                                                     np.ndarray]:
    """Row numbers (train, val, test) of the fixed NSL-KDD split: a random half of the normal
    rows to fit (a random `VAL_FRACTION` of it held out for validation; these rows have no
    times), the other half and every attack to test, each in file order."""
    rng = np.random.default_rng(seed)
    normal = rng.permutation(np.flatnonzero(labels == 0))
    fit, rest = normal[:len(normal) // 2], normal[len(normal) // 2:]
    n_val = int(round(VAL_FRACTION * len(fit)))
    test = np.concatenate([rest, np.flatnonzero(labels != 0)])
    return np.sort(fit[n_val:]), np.sort(fit[:n_val]), np.sort(test)


def nsl_kdd_fit_half(root: Path = DATASETS) -> tuple[pa.Table, pa.Table]:
    """NSL-KDD's fit half (train, val): normal rows, for fitting and feature checks only."""
    table, _ = nsl_kdd_table(root)
    train, val, _ = nsl_kdd_split(table["is_threat"].to_numpy(zero_copy_only=False))
    return table.take(train), table.take(val)


def _nsl_kdd(root: Path) -> Capture:
    table, difficulty = nsl_kdd_table(root)
    train, val, test = nsl_kdd_split(table["is_threat"].to_numpy(zero_copy_only=False))
    return Capture("nsl-kdd", "evaluation", "KDDTrain+_20Percent: half the normal rows -> "
                   "the other half + every attack", table.take(train), table.take(val),
                   table.take(test), layers=("layer1",),
                   subsets={f"difficulty<{NSL_HARD}": difficulty[test] < NSL_HARD})


def _demo(root: Path) -> Capture:
    from training.collection.event_dicts import events_table
    from training.demo.generator import generate_demo_events

    table = events_table(generate_demo_events(10_000, seed=42)["events"])
    micros = table["timestamp"].cast(pa.int64()).to_numpy(zero_copy_only=False)
    first = pa.array(micros < np.median(micros))
    train, val = time_split([benign(table.filter(first))])
    return Capture("demo", "development", "demo events: first half benign -> second half",
                   train, val, table.filter(pc.invert(first)))


CAPTURES: dict[str, tuple[str, Callable[[Path], Capture]]] = {
    "iot23-42": ("development", lambda root: _iot23(root, "42", "44", "development")),
    "iot23-44": ("development", lambda root: _iot23(root, "44", "42", "development")),
    "demo": ("development", _demo),
    "iot23-20": ("evaluation", lambda root: _iot23(root, "20", "21", "evaluation")),
    "iot23-21": ("evaluation", lambda root: _iot23(root, "21", "20", "evaluation")),
    "strat-011-to-008": ("evaluation", lambda root: _strat(root, "011", "008")),
    "strat-008-to-011": ("evaluation", lambda root: _strat(root, "008", "011")),
    "nsl-kdd": ("evaluation", _nsl_kdd),
}


def capture_names(role: str | None = None) -> list[str]:
    """The captures of `role` ("development", "evaluation"), or all of them."""
    return [name for name, (r, _) in CAPTURES.items() if role in (None, r)]


def load_capture(name: str, root: str | Path = DATASETS) -> Capture:
    """The capture `name`, read from the datasets folder `root`; a name that is a path (a
    labeled log, a Zeek folder, a CSV) is a capture of your own (`harness.own`).

    Raises:
        ConfigError: an unknown name (the message lists the valid ones); see `own_capture`.
        SourceError: a dataset file is missing.
    """
    if name not in CAPTURES and is_own(name):
        return own_capture(name)
    try:
        _, load = CAPTURES[name]
    except KeyError:
        raise ConfigError(f"unknown capture {name!r}; known: {', '.join(CAPTURES)}, or the path "
                          "of a labeled capture of your own") from None
    return load(Path(root))
