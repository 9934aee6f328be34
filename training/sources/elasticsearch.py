"""Elasticsearch indices (Elastic SIEM, Security Onion, Wazuh indexer), read the way a
production cluster expects: sliced point-in-time searches with `search_after`.

Reading. Each collection run opens one point in time (PIT) over `index` (a name, alias or
pattern; several comma-separated) and shares it between its slices. A slice is a stream of the
collector ("all" without slicing, "slice-2-of-4" with `slices=4`); the collector reads the
slices in parallel (`concurrent_streams`). Each reads pages of `batch_size` hits sorted on
`time_field` then `_shard_doc` (the tiebreaker the PIT documentation prescribes), each page
asking for the hits after the last sort values of the one before. The run's time range and the
source's `query_filter` (query-string text, or a query DSL dict) are filters of the query. The
PIT is closed when the run ends, early or on an error too.

Documents become flat rows (nested objects as dotted names, as the JSON source makes them:
the same parser reads both), with the document `_id` in an `_id` column, which is the event id.
ECS names, Filebeat's Zeek and Suricata module names and what they need beyond a name
(`event.duration` in ns, Suricata alerts as threats) map as in `training.sources.ecs`.

Exactly once across interruptions. A position holds the sort values of the last delivered hit
and the `_id`s delivered at its timestamp. Within a run, the next page starts after those sort
values. A resumed run has a new PIT, whose `_shard_doc` values need not match the old one's
(segment merges renumber documents), so it starts at the last timestamp instead (search_after
[timestamp, -1]) and skips the `_id`s already delivered there, on every page that still reaches
that timestamp (more documents than a page can share it): every document present in both views
is delivered once, whatever the tiebreaker did. Slices are cut on the time field
(`slice.field`) rather than on Lucene doc ids (the PIT default), for the same reason: a
document's slice must not change between the views of an interrupted run and its resume. (A
mid-page cut by `max_events` stores the exact position after the cut, `RawBatch.position_after`.)
The same applies when a PIT expires mid-read: a new one is opened and reading goes on. Documents
indexed after a run with a timestamp before its position are not picked up by its resume.

Connection (`connection_params`): `hosts` (a URL or a list; the original `host` works too; a
URL without scheme is http, port 9200), `index`, `api_key` (encoded, or [id, key]) or
`username`/`password`, `ca_certs`, `verify_certs` (default true), `request_timeout` (s, default
30), `slices` (default 1), `keep_alive` (PIT lifetime between pages, default "5m"),
`max_retries` (default 5) and `retry_backoff` (s, default 0.5): see `es_session`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping
from typing import ClassVar
from urllib.parse import urlsplit

import numpy as np
import orjson

from training.collection.schema import GENERIC_FIELD_MAP
from training.errors import ConfigError
from training.sources.base import RawBatch, Source
from training.sources.config import DataSource
from training.sources.es_hits import unwrap_hits
from training.sources.es_session import PitExpired, Session, Settings
from training.sources.files import Block
from training.sources.jsonparse import parse_jsonl_block

# The generic map already knows ECS and Filebeat's module names; the event id is the `_id`.
ELASTIC_FIELD_MAP: dict[str, tuple[str, ...]] = {**GENERIC_FIELD_MAP, "event_id": ("_id",)}
MAX_PAGE = 10_000  # index.max_result_window's default: no page may be larger
_KEEP_ALIVE = re.compile(r"^\d+(ms|s|m|h|d)$")
_SECRETS = frozenset({"api_key", "username", "password"})


def _stream_key(slice_id: int, slices: int) -> str:
    return "all" if slices == 1 else f"slice-{slice_id}-of-{slices}"


class ElasticsearchSource(Source):
    """Documents of an Elasticsearch index, alias or pattern (see the module docstring)."""

    field_map: ClassVar = ELASTIC_FIELD_MAP
    params: ClassVar[dict[str, object]] = {
        "hosts": None, "host": None, "index": None,
        "api_key": None, "username": None, "password": None,
        "ca_certs": None, "verify_certs": True, "request_timeout": 30.0,
        "slices": 1, "keep_alive": "5m", "max_retries": 5, "retry_backoff": 0.5,
    }
    how_params: ClassVar[frozenset[str]] = _SECRETS | {
        "ca_certs", "verify_certs", "request_timeout", "keep_alive", "max_retries", "retry_backoff"}
    concurrent_streams: ClassVar[bool] = True

    def __init__(self, config: DataSource) -> None:
        super().__init__(config)
        options = self.options
        if not config.time_field:
            raise ConfigError(f"elasticsearch source {config.name!r} needs a time_field to sort "
                              "and resume on, e.g. '@timestamp'")
        if config.batch_size > MAX_PAGE:
            raise ConfigError(f"batch_size must be <= {MAX_PAGE} for elasticsearch (the default "
                              f"index.max_result_window), got {config.batch_size}")
        self.slices = _positive_int(options["slices"], "slices")
        api_key, username, password = options["api_key"], options["username"], options["password"]
        if api_key is not None and (username is not None or password is not None):
            raise ConfigError("give either api_key or username/password, not both")
        if password is not None and username is None:
            raise ConfigError("password needs a username")
        if isinstance(api_key, (list, tuple)):
            if len(api_key) != 2 or not all(isinstance(p, str) and p for p in api_key):
                raise ConfigError("api_key must be the encoded key or a pair [id, api_key]")
            api_key = (api_key[0], api_key[1])
        elif api_key is not None and not (isinstance(api_key, str) and api_key):
            raise ConfigError("api_key must be the encoded key or a pair [id, api_key]")
        keep_alive = options["keep_alive"]
        if not (isinstance(keep_alive, str) and _KEEP_ALIVE.match(keep_alive)):
            raise ConfigError(f"keep_alive must be a duration like '5m' or '90s', got {keep_alive!r}")
        timeout, backoff = options["request_timeout"], options["retry_backoff"]
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ConfigError(f"request_timeout must be a number of seconds > 0, got {timeout!r}")
        if isinstance(backoff, bool) or not isinstance(backoff, (int, float)) or backoff < 0:
            raise ConfigError(f"retry_backoff must be a number of seconds >= 0, got {backoff!r}")
        retries = options["max_retries"]
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ConfigError(f"max_retries must be an integer >= 0, got {retries!r}")
        self.settings = Settings(
            hosts=_hosts(options["hosts"], options["host"]), index=_index(options["index"]),
            api_key=api_key, username=username, password=password,
            ca_certs=options["ca_certs"], verify_certs=bool(options["verify_certs"]),
            request_timeout=float(timeout), keep_alive=keep_alive, max_retries=retries,
            retry_backoff=float(backoff), connections=max(10, 2 * self.slices),
        )
        self.user_query = _user_query(config.query_filter)
        self._session: Session | None = None
        self._session_lock = threading.Lock()

    # -- the Source protocol --------------------------------------------------------------------

    def streams(self) -> list[str]:
        return [_stream_key(i, self.slices) for i in range(self.slices)]

    def read(self, stream: str, start: dict) -> Iterator[RawBatch]:
        """The slice's pages from `start` on (see the module docstring for positions)."""
        slice_id = self._slice_id(stream)
        position = {"offset": 0, "line": 0, "after": None, "tied": [], **start}
        session = self.session()
        # The first page starts at the checkpointed timestamp: this run's PIT is not the one
        # whose sort values the position holds.
        fresh = True
        skip: tuple[object, set[str]] | None = None  # (timestamp, _ids delivered there before)
        try:
            while True:
                generation, pit_id = session.pit()
                body = self.search_body(pit_id, slice_id, position["after"], fresh)
                if fresh and position["after"] is not None:
                    skip = (position["after"][0], set(position["tied"]))
                try:
                    response = session.search(generation, body, f"reading {stream}")
                except PitExpired:
                    session.reopen(generation)
                    fresh = True
                    continue
                hits = response["hits"]["hits"]
                if hits:
                    batch = self._batch(stream, position, hits, skip)
                    position = batch.end
                    if skip is not None and hits[-1]["sort"][0] != skip[0]:
                        skip = None  # sorted on time: no later page reaches that timestamp
                    if batch.table.num_rows or batch.rejects:
                        yield batch
                fresh = False
                if len(hits) < self.config.batch_size:
                    return
        except GeneratorExit:
            raise
        except BaseException:
            self.close()  # the run is over: free the PIT now rather than after keep_alive
            raise

    def close(self) -> None:
        with self._session_lock:
            session, self._session = self._session, None
        if session is not None:
            session.close()

    # -- requests ---------------------------------------------------------------------------------

    def session(self) -> Session:
        """This run's connection, made on first use (a run ends with `close`)."""
        with self._session_lock:
            if self._session is None:
                self._session = Session(self.settings)
            return self._session

    def query(self) -> dict:
        """The query of every page: the run's time range and the user's filter."""
        time_field = self.config.time_field
        filters: list[dict] = []
        start, end = self.time_range
        if start is not None or end is not None:
            bounds = {"format": "strict_date_optional_time"}
            if start is not None:
                bounds["gte"] = start.isoformat()
            if end is not None:
                bounds["lt"] = end.isoformat()
            filters.append({"range": {time_field: bounds}})
        if self.user_query is not None:
            filters.append(self.user_query)
        return {"bool": {"filter": filters}} if filters else {"match_all": {}}

    def search_body(self, pit_id: str, slice_id: int, after: list | None, fresh: bool) -> dict:
        """The search request of one page."""
        time_field = self.config.time_field
        body: dict = {
            "pit": {"id": pit_id, "keep_alive": self.settings.keep_alive},
            "size": self.config.batch_size,
            "sort": [{time_field: {"order": "asc"}}, {"_shard_doc": {"order": "asc"}}],
            "query": self.query(),
            "track_total_hits": False,
        }
        if self.slices > 1:
            body["slice"] = {"field": time_field, "id": slice_id, "max": self.slices}
        if after is not None:
            # -1 is below every _shard_doc: the whole last timestamp again (see module docstring).
            body["search_after"] = [after[0], -1] if fresh else after
        return body

    # -- pages to batches -------------------------------------------------------------------------

    def _slice_id(self, stream: str) -> int:
        for i in range(self.slices):
            if stream == _stream_key(i, self.slices):
                return i
        raise ConfigError(f"{self.name}: no stream {stream!r}; streams are {self.streams()}")

    def _batch(self, stream: str, start: dict, hits: list[dict],
               skip: tuple[object, set[str]] | None) -> RawBatch:
        """One page as a raw batch; `skip`'s `_id`s at its timestamp (already delivered) left out."""
        keys = [(hit["_id"], hit["sort"]) for hit in hits]  # all positions need (not the hits)
        if skip is not None:
            at, done = skip
            kept = [i for i, (id_, sort) in enumerate(keys) if not (sort[0] == at and id_ in done)]
        else:
            kept = list(range(len(hits)))
        first = start["record"]
        # The hit's id and document, read as every export of hits is (`es_hits`).
        texts = [orjson.dumps({"_id": hits[i]["_id"], "_source": hits[i].get("_source") or {}})
                 for i in kept]
        data = b"\n".join(texts) + b"\n" if texts else b""
        parsed = parse_jsonl_block(Block(data, 0, 1), stream, first)

        def position_after(record: int) -> dict:
            return _advance(start, keys, kept[record - first], record + 1)

        return RawBatch(
            table=unwrap_hits(parsed.table),
            stream=stream,
            lines=np.full(len(parsed.records), -1, dtype=np.int64),  # documents have no lines
            records=parsed.records,
            start=start,
            end=_advance(start, keys, len(keys) - 1, first + len(kept)),
            rejects=parsed.rejects,
            spans=parsed.spans,
            position_after=position_after,
        )


def _advance(start: dict, keys: list[tuple[str, list]], last: int, record: int) -> dict:
    """The position after hit `last` (of a page's (_id, sort values)) of a page that began at
    `start`: its sort values, and the `_id`s delivered at its timestamp (from earlier pages too
    when the page shares it)."""
    sort = keys[last][1]
    tail = [id_ for id_, values in keys[: last + 1] if values[0] == sort[0]]
    same_as_before = start["after"] is not None and start["after"][0] == sort[0]
    tied = [*start["tied"], *tail] if same_as_before else tail
    return {"offset": 0, "line": 0, "record": record, "after": list(sort),
            "tied": list(dict.fromkeys(tied))}


# -- configuration ---------------------------------------------------------------------------------


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    return url.replace(parts.netloc, "***@" + parts.netloc.rpartition("@")[2], 1)


def _hosts(hosts: object, host: object) -> tuple[str, ...]:
    """Node URLs from `hosts` (one or many) or the original `host`."""
    if hosts is not None and host is not None:
        raise ConfigError("give hosts or host, not both")
    given = hosts if hosts is not None else host
    if isinstance(given, str):
        given = [given]
    if not isinstance(given, (list, tuple)) or not given:
        raise ConfigError("elasticsearch sources need connection_params['hosts'] (a URL such "
                          f"as 'https://es01:9200', or a list), got {given!r}")
    urls = []
    for k, url in enumerate(given):
        if not isinstance(url, str) or not url.strip():
            raise ConfigError(f"hosts[{k}] must be a URL such as 'https://es01:9200', got {url!r}")
        url = url.strip().rstrip("/")
        if "://" not in url:
            url = "http://" + url  # the original client's default for "host:port"
        parts = urlsplit(url)
        if parts.username is not None or parts.password is not None:
            raise ConfigError(f"hosts[{k}] = {_redacted(url)} carries credentials; give them as "
                              "api_key or username/password instead, never in the URL")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"hosts[{k}] must be an http:// or https:// URL, got {url!r}")
        if parts.port is None and parts.scheme == "http":
            url = f"{parts.scheme}://{parts.netloc}:9200{parts.path}"
        urls.append(url)
    return tuple(urls)


def _index(index: object) -> str:
    names = [index] if isinstance(index, str) else index
    if (not isinstance(names, (list, tuple)) or not names
            or not all(isinstance(n, str) and n.strip() for n in names)):
        raise ConfigError("elasticsearch sources need connection_params['index'] (an index, "
                          f"alias or pattern such as 'logs-*', or a list), got {index!r}")
    return ",".join(n.strip() for n in names)


def _user_query(query_filter: object) -> dict | None:
    """`query_filter` as a query clause: text is query-string syntax, a dict is query DSL."""
    if query_filter is None:
        return None
    if isinstance(query_filter, str):
        text = query_filter.strip()
        return {"query_string": {"query": text}} if text else None
    if isinstance(query_filter, Mapping):
        clause = dict(query_filter)
        if set(clause) == {"query"} and isinstance(clause["query"], Mapping):
            clause = dict(clause["query"])  # a whole search body pasted from Kibana
        if len(clause) != 1:
            raise ConfigError("query_filter must be one query clause, e.g. {'term': {"
                              f"'event.module': 'zeek'}}, got keys {sorted(clause)}")
        return clause
    raise ConfigError(f"query_filter must be query-string text or a query DSL dict, got "
                      f"{type(query_filter).__name__}")
