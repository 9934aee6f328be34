"""Where two collection recipes differ (`resume_state`: why a collection is not resumed)."""

from __future__ import annotations


def changed_entries(old: object, new: object, path: str = "") -> list[str]:
    """Where two recipes differ, down to the innermost entry (`sources[0].params.null_cells`):
    a rule a newer version records for one source is then named, not just "sources"."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [p for k in sorted(old.keys() | new.keys())
                for p in changed_entries(old.get(k), new.get(k), f"{path}.{k}" if path else k)]
    if (isinstance(old, list) and isinstance(new, list) and len(old) == len(new)
            and all(isinstance(x, dict) for x in old + new)):
        return [p for i, (a, b) in enumerate(zip(old, new))
                for p in changed_entries(a, b, f"{path}[{i}]")]
    return [] if old == new else [path]
