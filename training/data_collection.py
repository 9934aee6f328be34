"""Collecting events from every configured source (the original module name; the code lives in
`training.collection` and `training.sources`)."""

from training.collection.collector import DataCollector
from training.collection.event_files import CollectedEvent
from training.sources.config import DataSource, DataSourceType

__all__ = ["CollectedEvent", "DataCollector", "DataSource", "DataSourceType"]
