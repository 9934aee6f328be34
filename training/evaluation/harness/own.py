"""A user's own labeled capture in the harness, named by its path instead of a capture name.

    python benchmarks/detection_harness.py --captures ../my/zeek-labeled --seeds 0 --jobs 1

`load_capture` takes a path (a labeled Zeek log, a Zeek folder, or a CSV with `label` or
`is_threat`) where it takes a name, and reads it with the demo capture's protocol, the one for a
single capture with times: the events are cut at their median time; the benign rows (is_threat
0; Background/unknown is never benign) of the first half fit, the last 20% of those by time
held out for validation; every row of the second half is scored. Its role is "evaluation": its
figures are for reading, never for choosing. Events without a time are left out.

Its run notes the fields that separate its labels and its too-small parts, as every capture's
does (`notes`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.collection.collector import DataCollector, DataSource
from training.errors import ConfigError, SourceError
from training.evaluation.harness.protocol import Capture, benign, time_split

ROLE = "evaluation"  # a user's capture is measured, never chosen on


def is_own(name: str) -> bool:
    """Whether a capture name is a path: it has a separator or names an existing file/folder."""
    return "/" in name or Path(name).exists()


def collect_path(path: Path) -> pa.Table:
    """The canonical events of a file or a folder of logs (CSV by suffix, else Zeek).

    Raises:
        SourceError: nothing at `path`.
    """
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder (a capture of your own is a labeled "
                          "Zeek log, a Zeek folder, or a CSV)")
    kind = "csv_file" if path.is_file() and path.suffix in (".csv", ".txt") else "zeek_logs"
    return DataCollector([DataSource(path.stem or path.name, kind, {"path": str(path)})],
                         progress=False).collect_table()


def own_capture(path: str | Path) -> Capture:
    """The capture at `path` under the protocol of the module docstring.

    Raises:
        SourceError: nothing at `path`.
        ConfigError: no timestamps, no benign row in the first half, or no labeled row of one
            class in the second half (the message says which).
    """
    table = collect_path(Path(path))
    times = table["timestamp"].cast(pa.int64())
    if times.null_count == table.num_rows:
        raise ConfigError(f"{path}: its events have no timestamps; the protocol for a capture "
                          "of your own cuts it by time")
    table = table.filter(pc.is_valid(times))
    micros = table["timestamp"].cast(pa.int64()).to_numpy(zero_copy_only=False)
    first = pa.array(micros < np.median(micros))
    fit, test = benign(table.filter(first)), table.filter(pc.invert(first))
    labels = test["is_threat"].to_numpy(zero_copy_only=False)
    missing = [what for what, ok in (("benign rows in its first half (to fit on)", fit.num_rows),
                                     ("threats in its second half", (labels == 1).any()),
                                     ("benign rows in its second half", (labels == 0).any()))
               if not ok]
    if missing:
        raise ConfigError(f"{path}: no {' and no '.join(missing)}; the harness fits on the "
                          "benign rows before the median time and scores every row after it")
    train, val = time_split([fit])
    return Capture(str(path), ROLE, f"{path}: first half benign -> second half", train, val,
                   test)
