"""Elasticsearch hits as events: the one rule for a document read from a cluster or an export.

A hit is `{"_index", "_id", "_score", "_source": {document}, "sort", ...}`. Its event is the
document with the hit's `_id` beside it (the event id: `GENERIC_FIELD_MAP["event_id"]`); the
rest of the envelope (index, score, sort values) says where the document was found, not what
happened, so it is dropped. The Elasticsearch source reads hits from the cluster, and the JSON
source reads them from exports (elasticdump NDJSON, a `_search` response's `hits.hits`): both
turn them into rows with `unwrap_hits`, so an index and its export map the same way.
"""

from __future__ import annotations

import pyarrow as pa

from training.sources.jsonparse import unique_names

SOURCE_PREFIX = "_source."
HIT_ID = "_id"
# The envelope of a hit beside `_source` and `_id` (search and get APIs, elasticdump).
_ENVELOPE = frozenset({"_index", "_type", "_score", "_version", "_seq_no", "_primary_term",
                       "_routing", "_ignored", "_explanation", "_shard", "_node", "_nested",
                       "found", "sort", "matched_queries"})
_ENVELOPE_PREFIXES = ("fields.", "highlight.", "inner_hits.", "_explanation.")


def is_hits(table: pa.Table) -> bool:
    """Whether the rows of `table` are Elasticsearch hits (a `_source` object and an `_id`)."""
    names = table.column_names
    return HIT_ID in names and any(name.startswith(SOURCE_PREFIX) for name in names)


def unwrap_hits(table: pa.Table) -> pa.Table:
    """The documents of a table of hits (flat, nested objects as dotted names): `_source.x`
    becomes `x`, `_id` stays, the envelope goes. Any other table is returned as it is.

    A document field that a hit also has at its top level (outside `_source`) keeps both, the
    later column suffixed "~2" (as `unique_names` does for repeats).
    """
    if not is_hits(table):
        return table
    keep, names = [], []
    for i, name in enumerate(table.column_names):
        if name.startswith(SOURCE_PREFIX):
            name = name[len(SOURCE_PREFIX):]
        elif name in _ENVELOPE or name.startswith(_ENVELOPE_PREFIXES):
            continue
        keep.append(i)
        names.append(name)
    return pa.table([table.column(i) for i in keep], names=unique_names(names))
