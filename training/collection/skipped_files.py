"""What a file source passed over, said once per run and kept in the collection's counters."""

from __future__ import annotations

import logging

from training.sources.base import FileSource, Source

logger = logging.getLogger("training.collection.collector")  # where users filter its lines


def note_skipped(reader: Source, streams: list[str], stats: dict) -> None:
    """Files a directory scan passed over, and links leading out of the folder a source was
    pointed at, are named in `stats` and counted in one log line each; a file source that
    found no file at all says so (an empty folder, a glob matching nothing)."""
    skipped = [str(p) for p in getattr(reader, "skipped", [])]
    if not streams and not skipped and isinstance(reader, FileSource):
        logger.warning("%s: no file to read in %s (its files: %s): nothing collected from "
                       "it", reader.name, reader.options["path"], ", ".join(reader.patterns or "*"))
    if skipped:
        logger.warning("%s: skipped %d files not of its format, not regular files, or named "
                       "in bytes that are not UTF-8: %s", reader.name, len(skipped),
                       ", ".join(skipped[:10]))
        stats["skipped_files"] = sorted(set(stats.get("skipped_files", [])) | set(skipped))
    links = [str(p) for p in getattr(reader, "skipped_links", [])]
    if links:
        logger.warning("%s: skipped %d links leading outside the folder they are in (set "
                       "connection_params follow_symlinks=True to read them): %s",
                       reader.name, len(links), ", ".join(links[:10]))
        stats["skipped_links"] = sorted(set(stats.get("skipped_links", [])) | set(links))
