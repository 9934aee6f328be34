"""Alert documents into Elasticsearch through the official client's bulk API.

    sink = BulkIndexer(es_params("http://es01:9200/maximus-alerts", os.environ))
    refused = sink.index(docs)        # what the cluster would not take, with the reason

Connection and credentials are handled as for the Elasticsearch source (the same
`connection_params`, `MAXIMUS_ES_*` environment variables on the command line, secrets never
logged), and a whole request is retried on a dropped connection, 429 and 5xx with backoff
(`es_session.Session.call`).

A bulk answer can refuse some items and take the rest. Each item refused with a status worth
retrying (429: the cluster is busy; 5xx) is sent again, alone with the other refused ones, up to
`max_retries` times with backoff; an item refused for good (400 mapping error, 403) or still
refused after the retries is returned with its status and reason, so the caller reports it
(nothing is dropped silently). Documents are indexed under their `event.id`: sending one twice
(a retry, a replay after a crash) leaves one document.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from training.errors import SourceError
from training.sources.config import DataSource, DataSourceType
from training.sources.elasticsearch import ElasticsearchSource
from training.sources.es_session import BACKOFF_CAP_S, RETRY_STATUSES, Session

logger = logging.getLogger(__name__)

MAX_BULK = 2000  # documents per bulk request (about 1.5 MB of alerts)


@dataclass(frozen=True)
class Refused:
    """A document the cluster did not take: its id, the last status and reason."""

    doc: dict[str, Any]
    status: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "reason": self.reason, "document": self.doc}


class BulkIndexer:
    """Index documents into one index (see the module docstring).

    Args:
        params: Elasticsearch `connection_params` (`hosts`, `index`, `api_key` or
            `username`/`password`, `ca_certs`, `verify_certs`, `request_timeout`,
            `max_retries`, `retry_backoff`); `index` is a single index or alias to write to.
    """

    def __init__(self, params: Mapping[str, Any]) -> None:
        config = DataSource("alerts", DataSourceType.ELASTIC, dict(params), time_field="@timestamp")
        self.settings = ElasticsearchSource(config).settings  # validates like a source does
        if any(c in self.settings.index for c in ",*"):
            raise SourceError(f"{self.settings.where}: alerts are written to one index or "
                              "alias, not a pattern or a list")
        self._session = Session(self.settings)
        self.indexed = 0
        self.retried = 0

    def index(self, docs: list[dict[str, Any]]) -> list[Refused]:
        """Send `docs`; return those refused for good (empty when all were taken)."""
        refused: list[Refused] = []
        for at in range(0, len(docs), MAX_BULK):  # bounded requests (http.max_content_length)
            refused += self._index(docs[at:at + MAX_BULK])
        return refused

    def _index(self, docs: list[dict[str, Any]]) -> list[Refused]:
        pending = list(docs)
        refused: list[Refused] = []
        s = self.settings
        for attempt in range(s.max_retries + 1):
            if not pending:
                break
            answer = self._bulk(pending)
            retry: list[tuple[dict, int, str]] = []
            for doc, item in zip(pending, answer):
                result = next(iter(item.values()))
                status = int(result.get("status", 0))
                if 200 <= status < 300:
                    self.indexed += 1
                    continue
                reason = _reason(result.get("error"))
                if status in RETRY_STATUSES and attempt < s.max_retries:
                    retry.append((doc, status, reason))
                else:
                    refused.append(Refused(doc, status, reason))
            pending = [doc for doc, _, _ in retry]
            if pending:
                self.retried += len(pending)
                delay = min(BACKOFF_CAP_S, s.retry_backoff * 2**attempt) * random.uniform(0.5, 1)
                logger.warning("%s: %d of the alerts were refused (%d %s); retry %d of %d in "
                               "%.2f s", s.where, len(pending), retry[0][1], retry[0][2][:200],
                               attempt + 1, s.max_retries, delay)
                time.sleep(delay)
        if refused:
            logger.warning("%s: %d alerts were refused and not indexed (first: %d %s); they are "
                           "kept with the reason", s.where, len(refused), refused[0].status,
                           refused[0].reason[:200])
        return refused

    def _bulk(self, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One bulk request; its items, in the order of `docs`."""
        operations: list[dict[str, Any]] = []
        for doc in docs:
            operations += [{"index": {"_index": self.settings.index,
                                      "_id": doc["event"]["id"]}}, doc]
        client = self._session.client()
        answer = self._session.call(f"indexing {len(docs)} alerts",
                                    lambda: client.bulk(operations=operations))
        items = answer.get("items") or []
        if len(items) != len(docs):
            raise SourceError(f"{self.settings.where}: the bulk answer has {len(items)} items "
                              f"for {len(docs)} documents")
        return items

    def close(self) -> None:
        self._session.close()


def _reason(error: object) -> str:
    """`type: reason` of a bulk item's error (a dict, or a plain text from old clusters)."""
    if isinstance(error, dict):
        return f"{error.get('type', 'error')}: {error.get('reason', '')}"
    return str(error or "refused without a reason")
