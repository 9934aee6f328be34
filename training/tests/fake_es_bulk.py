"""The Elasticsearch stand-in with the bulk API, for the tests of writing alerts.

    POST /_bulk, POST /{index}/_bulk    NDJSON `index` / `create` actions with their documents

It answers as a cluster does: HTTP 200 with `errors` true when some items failed, and per item
`{"index": {"_index", "_id", "status", "result" | "error"}}`. An `index` action replaces a
document with the same `_id` (result "updated"); `create` answers 409 for an existing one.
A missing `_index` is 400 action_request_validation_exception; a body that is not NDJSON is 400
for the whole request. Refusals for tests: `refuse[_id]` is a list of statuses the next
attempts at that document get, one per attempt (429 es_rejected_execution_exception, 400
mapper_parsing_exception, ...). `bulk_requests` counts the requests, `attempts[_id]` the tries
at each document; documents land in `indices[index]` as {"_id", "_source"}.
"""

from __future__ import annotations

import threading

import orjson

from training.tests.fake_elasticsearch import FakeElasticsearch, _Handler
from training.tests.fake_es_dsl import EsError

_KINDS = {429: "es_rejected_execution_exception", 400: "mapper_parsing_exception",
          403: "security_exception", 409: "version_conflict_engine_exception",
          503: "unavailable_shards_exception"}


class FakeElasticsearchBulk(FakeElasticsearch):
    """`FakeElasticsearch` that also takes `_bulk` requests (see the module docstring)."""

    def __init__(self, indices: dict[str, list[dict]] | None = None, **kwargs: object) -> None:
        super().__init__(indices if indices is not None else {}, **kwargs)
        self.refuse: dict[str, list[int]] = {}
        self.attempts: dict[str, int] = {}
        self.bulk_requests = 0
        self.bulk_lock = threading.Lock()

    def handler_base(self) -> type:
        return _BulkHandler

    def documents(self, index: str) -> dict[str, dict]:
        """_id -> _source of an index."""
        return {d["_id"]: d["_source"] for d in self.indices.get(index, [])}

    def bulk(self, default_index: str | None, raw: bytes) -> dict:
        try:
            lines = [orjson.loads(line) for line in raw.splitlines() if line.strip()]
        except orjson.JSONDecodeError as exc:
            raise EsError(400, "x_content_parse_exception", f"bulk body is not NDJSON: {exc}")
        if len(lines) % 2:
            raise EsError(400, "illegal_argument_exception", "the bulk request must be "
                          "terminated by a newline and pair every action with a document")
        items = []
        with self.bulk_lock:
            self.bulk_requests += 1
            for action, source in zip(lines[::2], lines[1::2]):
                op, meta = next(iter(action.items()))
                items.append({op: self._item(op, meta, default_index, source)})
        errors = any("error" in next(iter(i.values())) for i in items)
        return {"took": 1, "errors": errors, "items": items}

    def _item(self, op: str, meta: dict, default_index: str | None, source: dict) -> dict:
        index, doc_id = meta.get("_index", default_index), meta.get("_id")
        if index is None or op not in ("index", "create"):
            return _error(index, doc_id, 400, "action_request_validation_exception",
                          "index is missing" if index is None else f"unsupported action {op}")
        self.attempts[doc_id] = self.attempts.get(doc_id, 0) + 1
        planned = self.refuse.get(doc_id)
        if planned:
            status = planned.pop(0)
            return _error(index, doc_id, status, _KINDS.get(status, "exception"),
                          f"injected {status} for [{doc_id}] (test fault)")
        docs = self.indices.setdefault(index, [])
        for existing in docs:
            if existing["_id"] == doc_id:
                if op == "create":
                    return _error(index, doc_id, 409, _KINDS[409],
                                  f"[{doc_id}]: version conflict, document already exists")
                existing["_source"] = source
                return {"_index": index, "_id": doc_id, "status": 200, "result": "updated"}
        docs.append({"_id": doc_id, "_source": source})
        return {"_index": index, "_id": doc_id, "status": 201, "result": "created"}


def _error(index: str | None, doc_id: str | None, status: int, kind: str, reason: str) -> dict:
    return {"_index": index, "_id": doc_id, "status": status,
            "error": {"type": kind, "reason": reason}}


class _BulkHandler(_Handler):
    def do_POST(self) -> None:
        self._bulk_or("POST")

    def do_PUT(self) -> None:  # the 8.x client sends bulk requests as PUT
        self._bulk_or("PUT")

    def _bulk_or(self, method: str) -> None:
        if not self.path.split("?", 1)[0].endswith("/_bulk"):
            self._handle(method)
            return
        es = self.es
        try:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self._check_media_type()
            es.check_auth(self.headers.get("Authorization"))
            path = self.path.split("?", 1)[0]
            index = path[1:-len("/_bulk")] or None
            self._send(200, es.bulk(index, raw))
        except EsError as exc:
            self._send(exc.status, exc.body(), auth=exc.status == 401)
