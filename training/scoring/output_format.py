"""The formats a batch `score` writes, chosen by the output file's suffix.

`scores.parquet` is Parquet; `scores.jsonl` (or `.json`) is JSON Lines; the incidents beside
it (`scores.incidents.parquet`) take the same format. Any other suffix is refused before any
work: a `.csv` name holding Parquet bytes would mislead every tool that opens it. So is an
output that is a folder.
"""

from __future__ import annotations

from pathlib import Path

from training.errors import ConfigError

PARQUET_SUFFIXES = (".parquet",)
JSONL_SUFFIXES = (".jsonl", ".json")


def is_jsonl(output: str | Path, what: str = "output") -> bool:
    """True when `output` is to be JSON Lines, False when Parquet.

    Args:
        what: how the caller names the file in the error, e.g. "--output".

    Raises:
        ConfigError: another suffix (the message names the ones accepted), or `output` is a
            folder: refused before any work, naming it.
    """
    if Path(output).is_dir():  # found only when the finished file would replace it
        raise ConfigError(f"{what} {output}: is a folder; score writes one file there and its "
                          "incidents and alerts page beside it: name a file, e.g. "
                          f"{Path(output) / 'scores.parquet'}")
    suffix = Path(output).suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return True
    if suffix in PARQUET_SUFFIXES:
        return False
    raise ConfigError(f"{what} {output}: score writes Parquet (.parquet) or JSON Lines (.jsonl, "
                      f".json), not {suffix or 'a file without a suffix'}; name the file "
                      "with one of these suffixes")
