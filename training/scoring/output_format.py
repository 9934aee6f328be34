"""The formats a batch `score` writes, chosen by the output file's suffix.

`scores.parquet` is Parquet; `scores.jsonl` (or `.json`) is JSON Lines; the incidents beside
it (`scores.incidents.parquet`) take the same format. Any other suffix is refused before any
work: a `.csv` name holding Parquet bytes would mislead every tool that opens it.
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
        ConfigError: another suffix; the message names the ones accepted.
    """
    suffix = Path(output).suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return True
    if suffix in PARQUET_SUFFIXES:
        return False
    raise ConfigError(f"{what} {output}: score writes Parquet (.parquet) or JSON Lines (.jsonl, "
                      f".json), not {suffix or 'a file without a suffix'}; name the file "
                      "with one of these suffixes")
