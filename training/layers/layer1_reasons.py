"""Layer-1 reasons: a detector's per-dim score terms added up per event field.

The VAE's score is its reconstruction error summed over the 128 dims, so its per-dim terms
(`Detector.feature_terms`) grouped by the field each dim encodes in the vectors' layout
(`training.features.layer1_names`) are the fields' contributions, and they sum to the score. The observed value is the event's
own (from the event table when given, else read back from its vector); the typical value is
the model's reconstruction read in words (`training.layers.layer1_typical`): what the model,
trained on benign events, expected this event to be, and why a field it expected still costs.
Only an event's first `REASONS_KEPT` reasons get their typical text (the rest None): an alert
row keeps no more (`reasons_column`), and the texts of every field were most of the time of
explaining an alert (BENCHMARKS.md, "Re-measured 2026-12-07").
A detector without per-feature terms raises NotSupportedError.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import torch

from training.collection.schema import NOT_FEATURE_FIELDS
from training.detectors.base import Detector
from training.features.layer1 import DIM, VERSION
from training.features.layer1_extras import extra_columns, extra_dims
from training.features.layer1_names import EXTRA_FIELD, decode_rows, field_dims
from training.features.layer1_rarity import PAIR_JOIN, pair_values
from training.layers.layer1_typical import typical_texts
from training.layers.reasons import REASONS_KEPT, Reason, ranked, ranking

KL_FIELD = "latent code (KL)"  # the ELBO score's last term: how unusual the event's code is
_RAW = {"file": ("file_path", "file_hash")}  # fields whose observed value has another name
_MAX_TEXT = 200  # characters of the extra fields a reason lists


def explain_vectors(model: Detector, features: np.ndarray, events: pa.Table | None = None,
                    robust: bool = False, layout: str = VERSION,
                    label_fields: Sequence[str] = NOT_FEATURE_FIELDS,
                    numbers_in_text: bool = True,
                    behaviour_only: bool = True) -> list[list[Reason]]:
    """The reasons of each event, largest contribution first; `typical` only in the first
    `REASONS_KEPT` (None after them).

    Args:
        model: a fitted detector with `feature_terms` (one term per dim, optionally a KL last).
        features: (events, 128) layer-1 vectors.
        events: the events' canonical rows in the same order, for their observed values.
        robust: the vectors' volumes are robust-scaled (read back as scaled values).
        layout: the vectors' layout (`training.features.layer1.LAYOUTS`).
        label_fields: the featurizer's label fields (never features, so never reasons).
        numbers_in_text: the featurizer's `numbers_in_text` (which bucket a text value set).
        behaviour_only: the featurizer's `behaviour_only_extras` (which fields set none).

    Raises:
        NotSupportedError: the detector does not split its score into per-feature terms.
    """
    model.eval()
    x = torch.as_tensor(np.asarray(features, np.float32))
    with torch.no_grad():
        terms = model.feature_terms(x).double().numpy()  # (events, 128 [+ 1])
        expected = model.reconstruct(x).numpy() if hasattr(model, "reconstruct") else None
    slices = field_dims(layout)
    kl = terms.shape[1] > DIM
    fields = list(slices) + ([KL_FIELD] if kl else [])  # in the order the columns stack
    contributions = np.stack([terms[:, dims].sum(axis=1) for dims in slices.values()]
                             + ([terms[:, DIM]] if kl else []), axis=1)  # (events, fields)
    observed = _observed(events, features, robust, layout)  # (fields, events) texts
    if events is not None:  # the extra fields in the bucket that cost most, by name
        at = list(slices).index(EXTRA_FIELD)
        dims = slices[EXTRA_FIELD]
        observed[at] = _extra_fields(events, terms[:, dims], features[:, dims], label_fields,
                                     numbers_in_text, behaviour_only, observed[at])
    typical = (_kept_typical(features, expected, terms, ranking(contributions), robust, layout)
               if expected is not None else [[None] * len(features)] * len(slices))
    extra = [None] if kl else []
    return [ranked(fields, contributions[i], [column[i] for column in observed] + extra,
                   [column[i] for column in typical] + extra) for i in range(len(features))]


def _kept_typical(features: np.ndarray, expected: np.ndarray, terms: np.ndarray,
                  order: np.ndarray, robust: bool, layout: str) -> list[list[str | None]]:
    """Per field, every event's `typical` text where the field is among the event's first
    `REASONS_KEPT` reasons, else None (each event's text as `typical_texts` gives it alone).

    Shapes:
        features, expected: (events, 128); terms: (events, 128 [+ 1]);
        order: (events, fields [+ KL]), field indices by contribution (`ranking`).
    """
    kept = order[:, :REASONS_KEPT]
    columns: list[list[str | None]] = []
    for at, (field, dims) in enumerate(field_dims(layout).items()):
        rows = np.flatnonzero((kept == at).any(axis=1))  # the events that keep this field
        column: list[str | None] = [None] * len(features)
        if len(rows):
            texts = typical_texts(field, features[rows][:, dims], expected[rows][:, dims],
                                  terms[rows][:, dims], robust, layout)
            for i, text in zip(rows.tolist(), texts):
                column[i] = text
        columns.append(column)
    return columns


def _extra_fields(events: pa.Table, terms: np.ndarray, blocks: np.ndarray,
                  label_fields: Sequence[str], numbers_in_text: bool, behaviour_only: bool,
                  fallback: list[str | None]) -> list[str | None]:
    """Per event, its extra fields (16 buckets shared by every non-canonical field) that fall
    in its set bucket of largest error, as "name=value" (numbers by name too), so a reason
    says "ssl.version=TLSv10" rather than "extra fields set"; `fallback` where none does (the
    error is in buckets the event leaves empty)."""
    top = np.where(blocks > 0, terms, -np.inf).argmax(1)
    found: list[list[str]] = [[] for _ in range(events.num_rows)]
    for name, column in extra_columns(events, label_fields, behaviour_only):
        dims = extra_dims(name, column, numbers_in_text, behaviour_only)  # the buckets it set
        if dims is None:
            continue
        bucket = np.where(dims[1] > 0, dims[0], -1)
        values = None
        for i in np.flatnonzero(bucket == top):
            values = column.to_pylist() if values is None else values
            found[i].append(f"{name}={values[i]}")
    return [", ".join(f)[:_MAX_TEXT] if f else old for f, old in zip(found, fallback)]


def _observed(events: pa.Table | None, features: np.ndarray, robust: bool,
              layout: str) -> list[list[str | None]]:
    """Per field, every event's value as text: the raw event value (None where it has none)
    when the table has the field, else read back from the vector."""
    columns: list[list[str | None]] = []
    for field, dims in field_dims(layout).items():
        if events is not None and ">" in field:  # a pair (`l1.v4`): both values
            joined = pair_values(events, tuple(field.split(">")))
            columns.append([None if v is None else v.replace(PAIR_JOIN, " > ")
                            for v in joined.to_pylist()])
            continue
        names = ([n for n in _RAW.get(field, (field,)) if n in events.column_names]
                 if events is not None and field != "timestamp" else [])  # time: time of day
        if not names:
            columns.append(decode_rows(field, features[:, dims], robust, layout))
            continue
        values = [events[n].to_pylist() for n in names]
        columns.append([next((str(v[i]) for v in values if v[i] is not None), None)
                        for i in range(len(features))])
    return columns
