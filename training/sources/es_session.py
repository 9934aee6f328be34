"""One collection run's connection to Elasticsearch: the client, the point in time, retries.

The official client does the HTTP (nodes, TLS, authentication, product check). Its own retries
are switched off: it retries 429 and 5xx answers at once, without a pause, and a cluster that
answers 429 needs exactly that pause. Here every request is retried on a dropped or refused
connection, a timeout, 429 and 5xx, up to `max_retries` times, with exponential backoff and
jitter (`retry_backoff` seconds, doubling, at most 30 s); the node pool still moves a retry to
another host when one is down. Every search is a pure function of (point in time, sort values),
so repeating one never loses or repeats a document.

Errors are `SourceError`s that name the hosts and index and say what to check. Credentials
never appear in them, in log lines or in checkpoints: hosts carry no user info (refused at
configuration), and every text taken from an exception is scrubbed of the secrets.
"""

from __future__ import annotations

import base64
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from training.errors import SourceError

logger = logging.getLogger(__name__)

T = TypeVar("T")
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
BACKOFF_CAP_S = 30.0
_REDACTED = "***"


class PitExpired(Exception):
    """The point in time is gone (expired, or its node restarted): open a new one."""


@dataclass(frozen=True)
class Settings:
    """How to reach the cluster (secrets included; never logged or stored).

    Attributes:
        hosts: node URLs, without user info.
        index: the index, alias or pattern(s), comma-joined.
        api_key: an encoded API key, or (id, key).
        username, password: basic authentication.
        ca_certs, verify_certs: TLS verification.
        request_timeout: seconds per request.
        keep_alive: how long the cluster keeps the point in time between requests ("5m").
        max_retries, retry_backoff: see the module docstring.
        connections: HTTP connections per node (one per parallel slice, at least).
    """

    hosts: tuple[str, ...]
    index: str
    api_key: str | tuple[str, str] | None
    username: str | None
    password: str | None
    ca_certs: str | None
    verify_certs: bool
    request_timeout: float
    keep_alive: str
    max_retries: int
    retry_backoff: float
    connections: int

    def secrets(self) -> list[str]:
        """Every spelling of the credentials that could end up in a text."""
        found: list[str] = []
        if isinstance(self.api_key, str):
            found.append(self.api_key)
        elif self.api_key:
            found += [*self.api_key, base64.b64encode(":".join(self.api_key).encode()).decode()]
        if self.password:
            found.append(self.password)
            pair = f"{self.username or ''}:{self.password}".encode()
            found.append(base64.b64encode(pair).decode())
        return [s for s in found if s]

    @property
    def where(self) -> str:
        return f"Elasticsearch at {', '.join(self.hosts)} (index {self.index!r})"


def scrub(text: str, secrets: Sequence[str]) -> str:
    """`text` with every secret replaced by ***."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, _REDACTED)
    return text


def _error_detail(exc: Exception) -> tuple[int | None, str, str]:
    """(status, error type, reason) of a client exception, from the ES-shaped body if any."""
    status = getattr(exc, "status_code", None)
    body = getattr(exc, "body", None)
    kind, reason = type(exc).__name__, str(exc)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        kind = str(error.get("type", kind))
        reason = str(error.get("reason", reason))
        causes = error.get("root_cause") or []
        if kind == "search_phase_execution_exception" and causes and isinstance(causes[0], dict):
            kind, reason = str(causes[0].get("type", kind)), str(causes[0].get("reason", reason))
    elif getattr(exc, "message", None):
        reason = str(exc.message)
    return status, kind, reason


class Session:
    """The client and the point in time shared by the slices of one collection run.

    Thread-safe: parallel slices call `pit`, `search` and `reopen` at once.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._secrets = settings.secrets()
        self._lock = threading.Lock()
        self._client: Any = None
        self._pit_id: str | None = None
        self.generation = 0  # bumped each time a new point in time replaces an expired one

    # -- client and point in time -----------------------------------------------------------

    def _connect(self) -> Any:
        # The client is imported here, on first use, and in `call` and `_translate`: importing
        # it takes about 0.8 s, which collections of files alone should not pay.
        import elasticsearch
        from elasticsearch import serializer as serializers

        s = self.settings
        options: dict[str, Any] = {
            "request_timeout": s.request_timeout, "verify_certs": s.verify_certs,
            "max_retries": 0, "retry_on_status": (), "retry_on_timeout": False,
            "connections_per_node": s.connections,
        }
        if s.ca_certs:
            options["ca_certs"] = s.ca_certs
        if s.api_key:
            options["api_key"] = s.api_key
        elif s.username is not None:
            options["basic_auth"] = (s.username, s.password or "")
        orjson_serializer = getattr(serializers, "OrjsonSerializer", None)
        if orjson_serializer is not None:  # the client's default is the slower stdlib json
            options["serializer"] = orjson_serializer()
        try:
            return elasticsearch.Elasticsearch(list(s.hosts), **options)
        except (ValueError, TypeError) as exc:
            raise SourceError(f"{s.where}: cannot configure the client: "
                              f"{scrub(str(exc), self._secrets)}") from None

    def client(self) -> Any:
        """The client, made on first use (for requests other than reads: bulk indexing)."""
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    def pit(self) -> tuple[int, str]:
        """(generation, id) of the run's point in time, opened on first use."""
        with self._lock:
            if self._pit_id is None:
                self._open_pit()
            assert self._pit_id is not None
            return self.generation, self._pit_id

    def _open_pit(self) -> None:
        if self._client is None:
            self._client = self._connect()
        s = self.settings
        response = self.call("opening a point in time", lambda: self._client.open_point_in_time(
            index=s.index, keep_alive=s.keep_alive))
        self._pit_id = response["id"]
        shards = response.get("_shards") or {}
        if shards.get("total") == 0:
            logger.warning("%s: the index pattern matches no index; nothing to read", s.where)

    def reopen(self, generation: int) -> None:
        """Replace an expired point in time (once, however many slices saw it expire)."""
        with self._lock:
            if generation != self.generation:
                return  # another slice already did
            logger.warning("%s: the point in time expired (keep_alive=%s); reading on from the "
                           "last positions in a new one", self.settings.where,
                           self.settings.keep_alive)
            self._pit_id = None
            self.generation += 1
            self._open_pit()

    def search(self, generation: int, body: dict, what: str) -> dict:
        """One page; `PitExpired` when the point in time is gone."""

        def request() -> Any:
            return self._client.search(**body, allow_partial_search_results=False)

        response = self.call(what, request, expired_ok=True)
        shards = response.get("_shards") or {}
        if shards.get("failed") or response.get("timed_out"):
            failures = scrub(str(shards.get("failures", "timed out"))[:500], self._secrets)
            raise SourceError(f"{self.settings.where}: {what}: the search came back partial "
                              f"({failures}); rerun to resume from the last checkpoint")
        new_id = response.get("pit_id")
        if new_id:
            with self._lock:
                if generation == self.generation:
                    self._pit_id = new_id  # the cluster may hand out an updated id: use the latest
        return response

    def close(self) -> None:
        """Close the point in time and the client; failures are logged, never raised."""
        with self._lock:
            client, pit_id = self._client, self._pit_id
            self._client, self._pit_id = None, None
        if client is None:
            return
        if pit_id is not None:
            try:
                client.close_point_in_time(id=pit_id)
            except Exception as exc:  # the cluster frees it after keep_alive anyway
                logger.warning("%s: could not close the point in time (%s); the cluster frees "
                               "it after keep_alive=%s", self.settings.where,
                               scrub(_error_detail(exc)[2], self._secrets)[:200],
                               self.settings.keep_alive)
        client.close()

    # -- retries and errors -----------------------------------------------------------------

    def call(self, what: str, request: Callable[[], T], expired_ok: bool = False) -> T:
        """`request()`, retried with backoff on transient failures, errors translated."""
        from elastic_transport import TlsError
        from elasticsearch import ApiError, ConnectionError, ConnectionTimeout, TransportError

        s = self.settings
        for attempt in range(s.max_retries + 1):
            try:
                return request()
            except TlsError as exc:
                raise self._translate(exc, what, attempt + 1) from None
            except (ConnectionError, ConnectionTimeout) as exc:
                failure: Exception = exc
            except ApiError as exc:
                status, kind, _ = _error_detail(exc)
                if expired_ok and status == 404 and kind == "search_context_missing_exception":
                    raise PitExpired() from None
                if status not in RETRY_STATUSES:
                    raise self._translate(exc, what, attempt + 1) from None
                failure = exc
            except TransportError as exc:
                raise self._translate(exc, what, attempt + 1) from None
            if attempt == s.max_retries:
                raise self._translate(failure, what, attempt + 1) from None
            delay = min(BACKOFF_CAP_S, s.retry_backoff * 2**attempt) * random.uniform(0.5, 1.0)
            logger.warning("%s: %s failed (%s); retry %d of %d in %.2f s", s.where, what,
                           self._short(failure), attempt + 1, s.max_retries, delay)
            time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _short(self, exc: Exception) -> str:
        status, kind, reason = _error_detail(exc)
        text = f"{status} {kind}: {reason}" if status else f"{kind}: {reason}"
        return scrub(text, self._secrets)[:300]

    def _translate(self, exc: Exception, what: str, attempts: int) -> SourceError:
        """A clear error naming hosts and index; never a credential."""
        from elastic_transport import TlsError
        from elasticsearch import (
            ApiError, ConnectionError, ConnectionTimeout, UnsupportedProductError,
        )

        s = self.settings
        status, kind, reason = _error_detail(exc)
        reason = scrub(reason, self._secrets)[:300]
        if isinstance(exc, TlsError):
            text = (f"{s.where}: TLS failed while {what} ({reason}); check ca_certs and "
                    "verify_certs")
        elif isinstance(exc, UnsupportedProductError):
            text = f"{s.where}: the server does not answer as Elasticsearch ({reason})"
        elif status == 401:
            text = (f"{s.where}: authentication failed (401 {kind}); check api_key, or "
                    "username and password")
        elif status == 403:
            text = (f"{s.where}: not allowed to read the index (403 {kind}: {reason}); the "
                    "user or API key needs the 'read' privilege on it")
        elif status == 404 and kind == "index_not_found_exception":
            text = (f"{s.where}: no such index (404 {kind}: {reason}); check the index name "
                    "or pattern")
        elif isinstance(exc, (ConnectionError, ConnectionTimeout)):
            text = (f"{s.where} does not answer: {what} failed {attempts} times (last: "
                    f"{reason}); check the host, port, TLS settings and network")
        else:
            tries = f" after {attempts} attempts" if attempts > 1 else ""
            status_text = f"{status} " if isinstance(exc, ApiError) else ""
            text = f"{s.where}: {what} failed{tries} ({status_text}{kind}: {reason})"
        return SourceError(scrub(text, self._secrets))
