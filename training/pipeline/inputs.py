"""The pipeline's inputs: events collected as they are, the split that fits them, data checks.

Real folders hold logs the layers cannot place in time (Zeek's loaded_scripts.log,
packet_filter.log): when some events have timestamps and others not, the ones without are
left out of the run, with one note naming their files. Records about the sensor itself
(`SENSOR_EVENT_TYPES`: Suricata and Zeek stats, capture loss) are left out too, and counted. Events without any timestamp (NSL-KDD)
are kept, and a split that needs none ("random") replaces "temporal", said in a note.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from training.artifacts.atomic import atomic_write
from training.collection.collector import DataCollector
from training.collection.no_records import (
    inputs_without_records, no_records_warning, unmatched_label_maps,
)
from training.collection.quarantine_file import (common_reasons, quarantine_path,
                                                  write_quarantine)
from training.collection.schema import sensor_records
from training.datasets.validator import DataValidator, ValidationIssue, ValidationSeverity
from training.errors import PipelineError, SchemaError, TooFewError
from training.pipeline.config import PipelineConfig
from training.sources.config import DataSource

logger = logging.getLogger(__name__)

NEEDS_TIME = ("temporal",)
WITHOUT_TIME = "random"  # label-free and always possible


def collect_events(sources: tuple[DataSource, ...], path: Path, max_events: int | None,
                   notes: list[str], what: str = "the sources") -> tuple[pa.Table, int]:
    """Every event of `sources` (written to `path` as Parquet) and the number quarantined.

    Raises:
        SchemaError: the sources gave no event.
    """
    collector = DataCollector(list(sources), checkpoint_enabled=False)
    events = collector.collect_table(max_events=max_events)
    quarantined = len(collector.quarantined)
    if quarantined:  # each with its file, line and reason, where the run is
        where = write_quarantine(quarantine_path(path), collector.quarantined)
        notes.append(f"{quarantined:,} records of {what} quarantined (file, line, reason of "
                     f"each in {where})")
    empty = inputs_without_records(collector)
    notes.extend(no_records_warning(name) for name in empty)
    notes.extend(unmatched_label_maps(collector))
    duplicates = collector.get_stats()["duplicates"]
    if duplicates:
        lost = labels_lost(events, collector.labeled_duplicates)
        notes.append(f"{duplicates:,} duplicate events of {what} (an event id seen before) "
                     "dropped" + (f"; {lost:,} of the events kept have no label where their "
                                  "dropped copy had one (an unlabeled log read before its "
                                  "labeled copy, as conn.log beside labeled-conn.log): give the "
                                  "labeled files alone" if lost else ""))
    if not events.num_rows and quarantined:
        raise SchemaError(f"{what} gave no event: every record ({quarantined:,}) was quarantined, "
                          f"by reason: {common_reasons(collector.quarantined)}; the reason of "
                          f"each is in {where}")
    if not events.num_rows:
        read = f" from {', '.join(empty)}" if empty else ""
        raise SchemaError(f"{what} gave no event (no record was read{read}); check the paths and "
                          "the source types")
    # The sensor's records first: many have no time (loaded_scripts.log), as `score` counts.
    sensor = sensor_records(events["event_type"])
    if sensor.all():
        raise SchemaError(f"{what} gave only sensor records (stats, capture loss, ...), which "
                          "describe the sensor, not traffic; give the traffic logs")
    if sensor.any():
        notes.append(f"{sensor.sum():,} sensor records of {what} (stats, capture loss, ...) left "
                     "out: they describe the sensor, not traffic")
        events = events.filter(pa.array(~sensor))
    timed = events["timestamp"].is_valid()
    untimed = events.num_rows - pc.sum(timed).as_py()
    if 0 < untimed < events.num_rows:
        files = collector.untimed_streams()
        named = ", ".join(f"{name} ({count:,})" for name, count in files.items())
        rest = untimed - sum(files.values())
        note = (f"skipped {untimed:,} events without a timestamp (the layers place events in "
                f"time): {named or 'none from whole files'}"
                + (f"; {rest:,} more from files that have timestamps" if rest else ""))
        notes.append(note)
        logger.info(note)
        events = events.filter(timed)
    with atomic_write(path, private=True) as handle:  # raw input
        pq.write_table(events, handle)
    logger.info("collected %d events from %s (%d quarantined)", events.num_rows, what,
                quarantined)
    return events, quarantined


def labels_lost(events: pa.Table, dropped: list[pa.Array]) -> int:
    """Events without a label (is_threat -1) whose dropped duplicate had one (`dropped`: the
    event ids of those, `DataCollector.labeled_duplicates`)."""
    if not dropped:
        return 0
    copied = pc.is_in(events["event_id"], value_set=pa.concat_arrays(dropped))
    return int(pc.sum(pc.and_(copied, pc.equal(events["is_threat"], -1))).as_py() or 0)


def split_strategy(strategy: str, events: pa.Table, notes: list[str]) -> str:
    """`strategy`, or "random" when it needs timestamps the events do not have (said)."""
    if strategy in NEEDS_TIME and events["timestamp"].null_count == events.num_rows:
        note = (f"the events have no timestamps, so the split is {WITHOUT_TIME} instead of "
                f"{strategy} (train and test are not apart in time)")
        notes.append(note)
        logger.info(note)
        return WITHOUT_TIME
    return strategy


def coverage(events: pa.Table, entity: str | None = None) -> str:
    """What the events lack that layers need: "of 25,192 events, 25,192 have no timestamp and
    25,192 no source or destination address" ("" when nothing is missing); for a layer that
    follows `entity` "host" or "user" (layer 3's windows), the events without one instead of
    the addresses."""
    n = events.num_rows
    lacking = []
    untimed = events["timestamp"].null_count
    if untimed:
        lacking.append(f"{untimed:,} have no timestamp")
    if entity in ("host", "user"):
        if events[entity].null_count:
            lacking.append(f"{events[entity].null_count:,} no {entity}")
        return f"of {n:,} events, {' and '.join(lacking)}" if lacking else ""
    ends = pc.and_(events["source_ip"].is_valid(), events["dest_ip"].is_valid())
    no_ends = n - pc.sum(ends).as_py() if n else 0
    if no_ends:
        lacking.append(f"{no_ends:,} no source or destination address")
    return f"of {n:,} events, {' and '.join(lacking)}" if lacking else ""


def validate(vectors: Any, test_vectors: Any, config: PipelineConfig, strategy: str,
             cuts: tuple[object, object] | None, work: Path,
             events: tuple[pa.Table | None, ...] = ()) -> dict[str, Any]:
    """Quality of the event vectors, drift of the test part against the train part (cut
    at `cuts`, the run's `event_cut_times`, when given), and label leaks: fields of `events`
    (the events, the test events) that separate the labels once `config.drop_fields` are
    left out (`training.datasets.leaks`), each a WARNING, also logged.

    Raises:
        PipelineError: an ERROR issue; the message names the report.
    """
    from training.features.layer1_names import dim_names
    from training.layers.layer1 import Layer1

    features, labels = vectors.features, vectors.labels
    names = dim_names(getattr(vectors, "spec", None))  # named dims in the report, not feature_3
    # Leaks are judged on the events, whose fields and values have names (not on dims).
    quality = DataValidator(features, labels, feature_names=names).validate(check_leaks=False)
    quality.issues += label_leaks(events, config.drop_fields)
    try:
        if test_vectors is None:
            grace = {"train_until": config.split.grace} if config.split.grace is not None else {}
            splits = Layer1().split(vectors, strategy, config.split.ratios, config.seed,
                                    **({"at": cuts} if cuts is not None else grace))
            train, test = splits["train"].features, splits["test"].features
        else:
            train, test = features, test_vectors.features
    except TooFewError as exc:  # the layers' own splits fail too, and each says so
        quality.issues.append(ValidationIssue(ValidationSeverity.WARNING, "drift",
                                              f"not checked: no train and test part ({exc})"))
    else:
        drift = DataValidator(test, None, train, feature_names=names).validate(
            check_missing=False, check_outliers=False, check_labels=False,
            check_distributions=False, check_drift=True)
        quality.issues.extend(drift.issues)
        quality.statistics["drift"] = drift.statistics.get("drift")
    for suffix in (".txt", ".json"):
        DataValidator.save_report(quality, work / "report" / f"validation{suffix}")
    errors = [i.message for i in quality.issues if i.severity is ValidationSeverity.ERROR]
    if errors:
        raise PipelineError(f"validation failed ({work / 'report' / 'validation.txt'}): "
                            + "; ".join(errors))
    return {"passed": quality.passed,
            "issues": [f"{i.severity.value}: {i.check_name}: {i.message}" for i in quality.issues]}


def label_leaks(tables: tuple[pa.Table | None, ...], drop_fields: tuple[str, ...]
                ) -> list[ValidationIssue]:
    """A WARNING per field of `tables` without `drop_fields` that separates the labels (the
    first table's finding where several have it), each logged too."""
    from training.datasets.leaks import event_leaks
    from training.datasets.validator import leak_issues
    from training.features.dropped_fields import without_fields

    leaks: dict[str, Any] = {}
    for table in tables:
        if table is not None:
            for leak in event_leaks(without_fields(table, drop_fields)):
                leaks.setdefault(leak.field, leak)
    for leak in leaks.values():
        logger.warning(leak.message)
    return leak_issues(list(leaks.values()))
