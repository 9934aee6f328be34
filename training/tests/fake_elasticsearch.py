"""A stand-in for an Elasticsearch cluster, for the tests and the benchmark.

Why a stand-in: no Elasticsearch server can be installed on the machines this project is built
and tested on, and mocking the client would test nothing that matters (the requests the official
client really sends over HTTP, and what it makes of the answers). So tests start this small HTTP
server on 127.0.0.1, point the official `elasticsearch` client at it, and it answers the REST
endpoints a point-in-time read uses, with the status codes, headers and error bodies a real
cluster sends:

    GET /                         cluster info
    POST /{index}/_pit            open a point in time (?keep_alive= required); 404
                                  index_not_found_exception for a missing concrete index
    POST /_search                 pit, sort, search_after, slice {field, id, max}, size, query
                                  (match_all, bool filter/must/must_not, range, term, match,
                                  query_string with field:value terms joined by AND)
    DELETE /_pit                  close a point in time

It answers as an Elasticsearch 8 cluster: like one, it refuses a client that asks for
`compatible-with=9` (the 9.x Python client), which is why the project pins the 8.x client (it
talks to 8.x and 9.x clusters). It enforces the protocol: a search without a point-in-time id, with a sort whose last key is
not the `_shard_doc` tiebreaker, with `search_after` not matching the sort, or with a malformed
slice is refused with 400; an unknown or closed point in time gives 404
search_context_missing_exception; wrong or missing credentials give 401. `_shard_doc` is the
document's position in the point in time's snapshot (indices by name, documents in order), so
it is consistent within one point in time, as in a real cluster. A date sorts as epoch
milliseconds, a missing one last.

Faults for tests: `fail_statuses` (answer the next searches with these statuses, e.g. 429, 503),
`drop_after_pages` (close the socket without answering once k pages were served),
`hold_after_pages` (hold every search after k pages until `release()`, to kill a client
mid-read), `expire_after_pages` (forget every point in time once k pages were served).

It records what a test checks: the points in time opened and closed, the slices read
(`slices_read`), pages served, and the seconds its handlers spent (`busy_seconds`, of which
`serialize_seconds` building and encoding search answers; `GET /_fake/stats` returns them with
the process CPU time), so a benchmark can state the server's own cost.
"""

from __future__ import annotations

import base64
import bisect
import fnmatch
import itertools
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import orjson

from training.tests.fake_es_dsl import (
    LONG_MAX, EsError, compile_query, epoch_millis, field_value, mix, sort_key,
)

_COMPATIBLE = re.compile(r"compatible-with=(\d+)")
MAX_RESULT_WINDOW = 10_000


class _Pit:
    def __init__(self, docs: list[tuple[str, dict]], total_shards: int) -> None:
        self.docs = docs  # (index, {"_id", "_source"}) in _shard_doc order
        self.total_shards = total_shards
        self.views: dict[bytes, tuple[list[tuple], list[int]]] = {}
        self.rotation = itertools.count(1)


class FakeElasticsearch:
    """The server; use as a context manager (see the module docstring).

    Args:
        indices: index name -> documents, each {"_id": ..., "_source": {...}}.
        time_field: the date field (sorted as epoch millis, range-filtered as a date).
        api_key: the encoded API key a client must send, if any.
        basic_auth: (username, password) a client must send, if any.
    """

    def __init__(self, indices: dict[str, list[dict]], time_field: str = "@timestamp",
                 api_key: str | None = None, basic_auth: tuple[str, str] | None = None) -> None:
        self.indices = indices
        self.time_field = time_field
        self._auth = set()
        if api_key:
            self._auth.add(f"ApiKey {api_key}")
        if basic_auth:
            self._auth.add("Basic " + base64.b64encode(":".join(basic_auth).encode()).decode())
        self.lock = threading.Lock()
        self.pits: dict[str, _Pit] = {}
        self.pits_opened: list[str] = []
        self.pits_closed: list[str] = []
        self.slices_read: dict[str, set[tuple[int, int]]] = {}
        self.pages_served = 0
        self.searches = 0
        self.rejected: list[tuple[int, str]] = []
        self.search_bodies: deque[dict] = deque(maxlen=2_000)
        self.busy_seconds = 0.0
        self.serialize_seconds = 0.0
        self.fail_statuses: list[int] = []
        self.drop_after_pages: int | None = None
        self.dropped = 0
        self.hold_after_pages: int | None = None
        self.held = threading.Event()
        self._released = threading.Event()
        self.expire_after_pages: int | None = None
        self._ids = itertools.count(1)
        self._encoded: dict[int, orjson.Fragment] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "start the server first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeElasticsearch:
        handler = type("Handler", (self.handler_base(),), {"es": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-es",
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def handler_base(self) -> type:
        """The request handler class (a subclass adds endpoints: `fake_es_bulk`)."""
        return _Handler

    def release(self) -> None:
        """Let held searches go on (see `hold_after_pages`)."""
        self._released.set()

    @property
    def open_pits(self) -> set[str]:
        with self.lock:
            return set(self.pits)

    # -- endpoints -------------------------------------------------------------------------------

    def source_json(self, doc: dict) -> orjson.Fragment:
        """A document's _source, encoded once (a cluster stores it as bytes, too)."""
        cached = self._encoded.get(id(doc))
        if cached is None:
            cached = self._encoded[id(doc)] = orjson.Fragment(orjson.dumps(doc.get("_source", {})))
        return cached

    def stats(self) -> dict:
        """What the server has spent, for benchmarks (`GET /_fake/stats`)."""
        with self.lock:
            return {"busy_seconds": self.busy_seconds, "serialize_seconds": self.serialize_seconds,
                    "pages_served": self.pages_served, "cpu_seconds": time.process_time()}

    def check_auth(self, header: str | None) -> None:
        if self._auth and header not in self._auth:
            raise EsError(401, "security_exception", "unable to authenticate with provided "
                          "credentials and anonymous access is not allowed for this request")

    def info(self) -> dict:
        return {"name": "fake-node", "cluster_name": "fake", "cluster_uuid": "fake",
                "version": {"number": "8.15.0", "build_flavor": "default",
                            "lucene_version": "9.11.1"},
                "tagline": "You Know, for Search"}

    def open_pit(self, expression: str, query: dict) -> dict:
        if "keep_alive" not in query:
            raise EsError(400, "action_request_validation_exception",
                          "Validation Failed: 1: [keep_alive] is required;")
        names: list[str] = []
        for part in expression.split(","):
            if any(c in part for c in "*?"):
                names += [n for n in sorted(self.indices) if fnmatch.fnmatchcase(n, part)]
            elif part in self.indices:
                names.append(part)
            else:
                raise EsError(404, "index_not_found_exception", f"no such index [{part}]")
        names = list(dict.fromkeys(names))
        docs = [(name, doc) for name in names for doc in self.indices[name]]
        pit_id = base64.urlsafe_b64encode(f"pit-{next(self._ids)}".encode()).decode()
        with self.lock:
            self.pits[pit_id] = _Pit(docs, len(names))
            self.pits_opened.append(pit_id)
        shards = {"total": len(names), "successful": len(names), "skipped": 0, "failed": 0}
        return {"id": pit_id, "_shards": shards}

    def close_pit(self, body: dict) -> dict:
        pit_id = str(body.get("id", "")).split("~")[0]
        with self.lock:
            found = self.pits.pop(pit_id, None) is not None
            if found:
                self.pits_closed.append(pit_id)
        return {"succeeded": found, "num_freed": int(found)}

    def search(self, path: str, body: dict) -> tuple[dict, _Pit]:
        """Validate a search, then find its page (serialised by the caller)."""
        pit_ref = body.get("pit")
        if not isinstance(pit_ref, dict) or not pit_ref.get("id"):
            raise EsError(400, "action_request_validation_exception",
                          "Validation Failed: 1: this server serves point-in-time searches only "
                          "(no [pit] id in the request);")
        if path.strip("/") != "_search":
            raise EsError(400, "action_request_validation_exception",
                          "Validation Failed: 1: [indices] cannot be used with point in time;")
        base = str(pit_ref["id"]).split("~")[0]
        with self.lock:
            pit = self.pits.get(base)
        if pit is None:
            raise EsError(404, "search_phase_execution_exception",
                          f"No search context found for id [{base}]",
                          root="search_context_missing_exception")
        sort = body.get("sort")
        if not isinstance(sort, list) or not sort or sort_key(sort[-1]) != "_shard_doc":
            raise EsError(400, "action_request_validation_exception",
                          "Validation Failed: 1: the sort must end with the [_shard_doc] "
                          "tiebreaker for search_after over a point in time;")
        keys = [sort_key(s) for s in sort]
        after = body.get("search_after")
        if after is not None and (not isinstance(after, list) or len(after) != len(keys)):
            raise EsError(400, "illegal_argument_exception",
                          f"search_after has {len(after) if isinstance(after, list) else 0} "
                          f"value(s) but sort has {len(keys)}.")
        size = body.get("size", 10)
        if not isinstance(size, int) or not 0 <= size <= MAX_RESULT_WINDOW:
            raise EsError(400, "illegal_argument_exception",
                          f"Result window is too large, size must be <= {MAX_RESULT_WINDOW}")
        slice_spec = body.get("slice")
        if slice_spec is not None:
            if (not isinstance(slice_spec, dict) or set(slice_spec) - {"id", "max", "field"}
                    or not isinstance(slice_spec.get("id"), int)
                    or not isinstance(slice_spec.get("max"), int)):
                raise EsError(400, "x_content_parse_exception", f"malformed slice {slice_spec}")
            if slice_spec["max"] <= 1:
                raise EsError(400, "illegal_argument_exception", "max must be greater than 1")
            if not 0 <= slice_spec["id"] < slice_spec["max"]:
                raise EsError(400, "illegal_argument_exception", "id must be lower than max")
            with self.lock:
                self.slices_read.setdefault(base, set()).add((slice_spec["id"], slice_spec["max"]))
        view_key = orjson.dumps([keys, body.get("query"), slice_spec], option=orjson.OPT_SORT_KEYS)
        with self.lock:
            view = pit.views.get(view_key)
        if view is None:
            view = self._view(pit, keys, body.get("query") or {"match_all": {}}, slice_spec)
            with self.lock:
                pit.views[view_key] = view
        sort_values, positions = view
        start = 0 if after is None else bisect.bisect_right(sort_values, tuple(after))
        chosen = positions[start:start + size]
        hits = [(pit.docs[i], sort_values[start + k]) for k, i in enumerate(chosen)]
        rotated = f"{base}~{next(pit.rotation)}"
        return {"pit_id": rotated, "hits": hits}, pit

    def _view(self, pit: _Pit, keys: list[str], query: dict,
              slice_spec: dict | None) -> tuple[list[tuple], list[int]]:
        """The documents a (sort, query, slice) selects, sorted: (sort values, positions)."""
        matcher = compile_query(query, self.time_field)
        rows = []
        for position, (_, doc) in enumerate(pit.docs):
            source = doc.get("_source") or {}
            if not matcher(source):
                continue
            values = tuple(position if k == "_shard_doc" else self._sort_value(source, k)
                           for k in keys)
            if slice_spec is not None:
                field = slice_spec.get("field")
                token = position if field is None else self._sort_value(source, field)
                if mix(token) % slice_spec["max"] != slice_spec["id"]:
                    continue
            rows.append((values, position))
        rows.sort()
        return [r[0] for r in rows], [r[1] for r in rows]

    def _sort_value(self, source: dict, field: str) -> object:
        value = field_value(source, field)
        if field == self.time_field:
            millis = epoch_millis(value)
            return LONG_MAX if millis is None else millis
        return value if value is not None else LONG_MAX


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    es: FakeElasticsearch

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        started = time.perf_counter()
        es = self.es
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            self._check_media_type()
            es.check_auth(self.headers.get("Authorization"))
            body = orjson.loads(raw) if raw else {}
            if url.path == "/" and method in ("GET", "HEAD"):
                self._send(200, es.info())
            elif url.path == "/_fake/stats" and method == "GET":
                self._send(200, es.stats())
            elif url.path.endswith("/_pit") and method == "POST":
                self._send(200, es.open_pit(url.path[1:-len("/_pit")], query))
            elif url.path == "/_pit" and method == "DELETE":
                self._send(200, es.close_pit(body))
            elif url.path.endswith("/_search") and method in ("GET", "POST"):
                self._search(url.path, body)
            else:
                raise EsError(400, "illegal_argument_exception",
                              f"no handler for [{method} {url.path}] in the test server")
        except EsError as exc:
            with es.lock:
                es.rejected.append((exc.status, exc.kind))
            self._send(exc.status, exc.body(), auth=exc.status == 401)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away (a test killed it)
        except Exception as exc:  # a bug of this stand-in: answer it, do not drop the connection
            self._send(500, EsError(500, "fake_server_exception", repr(exc)).body())
        finally:
            with es.lock:
                es.busy_seconds += time.perf_counter() - started

    def _check_media_type(self) -> None:
        for header in ("Accept", "Content-Type"):
            found = _COMPATIBLE.search(self.headers.get(header) or "")
            if found and int(found.group(1)) not in (7, 8):
                raise EsError(400, "media_type_header_exception",
                              "Invalid media-type value on headers [Accept, Content-Type]",
                              root="media_type_header_exception")

    def _search(self, path: str, body: dict) -> None:
        es = self.es
        with es.lock:
            es.searches += 1
            es.search_bodies.append(body)
            served = es.pages_served
            status = es.fail_statuses.pop(0) if es.fail_statuses else None
            drop = es.drop_after_pages is not None and served >= es.drop_after_pages and not es.dropped
            if drop:
                es.dropped += 1
            if es.expire_after_pages is not None and served >= es.expire_after_pages:
                es.expire_after_pages = None
                es.pits.clear()
        if drop:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)  # no answer at all: a dropped connection
            return
        if status is not None:
            kind = "es_rejected_execution_exception" if status == 429 else "unavailable_shards_exception"
            raise EsError(status, kind, f"injected {status} (test fault)")
        if es.hold_after_pages is not None and served >= es.hold_after_pages:
            es.held.set()
            es._released.wait(timeout=120)
        started = time.perf_counter()
        answer, pit = es.search(path, body)
        hits = [{"_index": index, "_id": doc["_id"], "_score": None,
                 "_source": es.source_json(doc), "sort": list(values)}
                for (index, doc), values in answer["hits"]]
        payload = orjson.dumps({
            "pit_id": answer["pit_id"], "took": 1, "timed_out": False,
            "_shards": {"total": pit.total_shards, "successful": pit.total_shards,
                        "skipped": 0, "failed": 0},
            "hits": {"max_score": None, "hits": hits},
        })
        with es.lock:
            es.serialize_seconds += time.perf_counter() - started
            es.pages_served += 1
        self._send_bytes(200, payload)

    def _send(self, status: int, body: dict, auth: bool = False) -> None:
        self._send_bytes(status, orjson.dumps(body), auth)

    def _send_bytes(self, status: int, payload: bytes, auth: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if 200 <= status < 300:
            self.send_header("X-Elastic-Product", "Elasticsearch")
        if auth:
            self.send_header("WWW-Authenticate", 'ApiKey, Basic realm="security" charset="UTF-8"')
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)


def documents(records: Iterable[dict], prefix: str = "doc") -> list[dict]:
    """Index-ready documents with ids `prefix-0`, `prefix-1`, ..."""
    return [{"_id": f"{prefix}-{i}", "_source": record} for i, record in enumerate(records)]
