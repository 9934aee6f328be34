"""Log lines a person watching a run is spared: matplotlib's font fallbacks while we draw, a
warning repeated word for word within one command, and the Elasticsearch client's own warnings.

    with quiet_font_fallback():
        fig.savefig(buffer, format="png")

    handler.addFilter(OncePerCommand())   # a fresh filter per command
    handler.addFilter(QuietClients())     # without -v
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

FONT_LOGGER = "matplotlib.font_manager"
# elasticsearch-py and its transport: "Node <Urllib3HttpNode(...)> has failed for 3 times in a
# row, putting on 4 second timeout", "Retrying request after failure (attempt 1 of 3)", ...
CLIENT_LOGGERS = ("elasticsearch", "elastic_transport")


@contextmanager
def quiet_font_fallback() -> Iterator[None]:
    """Drop matplotlib's font-manager warnings for the block.

    Log-scale tick labels ("10^-3") are mathtext, and mathtext looks up every font of its
    default set (DejaVu Sans with STIX and Computer Modern fallbacks: STIXGeneral, cmsy10, ...)
    by family. Those fonts ship with matplotlib, but its font list is cached per user and
    per matplotlib version, not per installation: a cache written by another installation
    that does not ship them lacks them, and each lookup warns "findfont: Font
    family ... not found. Falling back to DejaVu Sans" (21 lines a figure). DejaVu Sans has
    every glyph our figures use, so the warnings say nothing about them. A filter, not a
    level, so that nested blocks, or blocks in several threads, leave the logger as it was.
    """
    def errors_only(record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR

    # A new function per block: nested blocks each add and remove their own.
    fonts = logging.getLogger(FONT_LOGGER)
    fonts.addFilter(errors_only)
    try:
        yield
    finally:
        fonts.removeFilter(errors_only)


class OncePerCommand(logging.Filter):
    """Pass a warning only the first time its logger says it word for word.

    The same data met again says the same thing again: a tuning study fits its layer once
    per trial, and each fit of spec-less vectors warns that they carry no FeatureSpec. A
    handler with this filter shows that once; other levels always pass.
    """

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[tuple[str, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING:
            return True
        key = (record.name, record.getMessage())
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


class QuietClients(logging.Filter):
    """Drop the warnings (and lower) of the Elasticsearch client's loggers (`CLIENT_LOGGERS`).

    With a cluster down, the client warns of each failed node and retry between our own lines,
    which already say what failed, how often we retry and what to do (`training.sources.
    elasticsearch`, `training.scoring.es_bulk`). Its errors pass; `-v` shows everything (the
    command adds this filter to its handler only without it). A filter on our handler, not a
    level on the library's loggers, so that a program that imports us keeps them as it set them.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        return not any(record.name == name or record.name.startswith(name + ".")
                       for name in CLIENT_LOGGERS)
