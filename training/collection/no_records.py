"""Inputs that gave no record at all: an empty file, a CSV of its header alone, a folder of
such. Reading them is no error (a rotated log may be empty for a while), but a run that scores
or collects nothing from an input must say so, naming it, rather than report "0 events" as if
the traffic were quiet.

    for name in inputs_without_records(collector):
        print(no_records_warning(name), file=sys.stderr)
"""

from __future__ import annotations

from typing import Any


def inputs_without_records(collector: Any) -> list[str]:
    """The inputs of `collector` (a `DataCollector` that has run) from which no record was
    read, quarantined ones included, over every run it resumed: each as given (its path, or
    its paths), else by its source name."""
    read = collector.get_stats().get("sources", {})
    return [_named(source) for source in collector.sources
            if not read.get(source.name, {}).get("rows")]


def no_records_warning(name: str) -> str:
    """The one line that says so (without "warning: ")."""
    return f"{name}: no records (an empty file or folder, or a header alone)"


def _named(source: Any) -> str:
    path = source.connection_params.get("path")
    if isinstance(path, (list, tuple)):
        return ", ".join(str(p) for p in path) or source.name
    return str(path) if path else source.name


def unmatched_label_maps(collector: Any) -> list[str]:
    """One line for each source whose label map names a label none of its records had (a typo
    such as "malicius" left every label as it was, silently: trial Q), with the labels read."""
    lines = []
    for source in collector.sources:
        unmatched = source.label_map.unmatched()
        if unmatched:
            seen = sorted(source.label_map.seen)
            shown = ", ".join(repr(s) for s in seen[:10]) + (" ..." if len(seen) > 10 else "")
            lines.append(f"source {source.name}: the label map's {', '.join(map(repr, unmatched))}"
                         f" matched no label of the records read this run (labels are matched "
                         f"ignoring case and blanks; they read: {shown})")
    return lines
