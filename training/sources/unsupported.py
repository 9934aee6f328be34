"""Source types the API names but this release cannot read yet: refused at construction."""

from __future__ import annotations

from collections.abc import Iterator

from training.errors import NotSupportedError
from training.sources.base import RawBatch, Source


class UnsupportedSource(Source):
    """Raises at construction so a misconfigured collection fails before it starts."""

    def __init__(self, config) -> None:
        raise NotSupportedError(
            f"{config.source_type.value} sources are not supported yet (source {config.name!r}); "
            "export the data to JSON Lines, CSV or Parquet and use a file source"
        )

    def streams(self) -> list[str]:  # pragma: no cover - never constructed
        return []

    def read(self, stream: str, start: dict) -> Iterator[RawBatch]:  # pragma: no cover
        return iter(())
