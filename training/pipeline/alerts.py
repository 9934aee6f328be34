"""The run's alerts page: every trained layer's test-part alerts, grouped into incidents.

After the layers are trained, each layer's new model scores its test units as `score` would
(`training.scoring.alerts.AlertRows`: the events' context, the threshold, the percentile among
the model's benign validation scores, the alerts' reasons); the alerts of all layers become
one incident table (`training.scoring.incidents`), and the best incidents are shown on the
run's alerts page (`training.scoring.alerts_page`). Files, in the run's `report/` folder:

| file | what |
|---|---|
| `test_alerts.parquet` | the alerting test units of every layer (`OUTPUT_SCHEMA`) |
| `test_alerts.incidents.parquet` | their incidents, best first (`INCIDENT_SCHEMA`) |
| `test_alerts.alerts.json`, `.alerts.html` | the alerts page and its values |

The run's front page links the HTML page (`training.pipeline.report`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from training.pipeline.fusion import TrainedLayer
from training.scoring.alerts import OUTPUT_SCHEMA, AlertRows
from training.scoring.alerts_page import write_alerts_page
from training.scoring.incidents import build_incidents
from training.scoring.tables import incidents_path, write_table

logger = logging.getLogger(__name__)

ALERTS_FILE = "test_alerts.parquet"


def test_units(trained: Sequence[TrainedLayer], events: pa.Table) -> pa.Table:
    """Every unit of every layer's test part, scored by its model, as alert rows.

    Args:
        trained: the trained layers (their models, calibrations and test parts).
        events: the events the test units were made from (for their context).
    """
    tables = [OUTPUT_SCHEMA.empty_table()]
    for t in trained:
        units = t.parts["test"]
        if not len(t.layer.labels(units)):  # a test part without units: nothing to score
            continue
        scores = t.layer.score(t.model, units)
        rows = AlertRows(t.layer, t.model, t.calibration.threshold, t.calibration)
        batch = rows.rows(units, scores, events)
        tables.append(pa.Table.from_batches([batch]))
    return pa.concat_tables(tables)


def write_run_alerts(trained: Sequence[TrainedLayer], events: pa.Table,
                     report_folder: str | Path) -> dict[str, Any]:
    """Score, group and write the run's alerts page (module docstring).

    Returns:
        JSON-able: the page's file name (relative to `report_folder`), the number of alerts
        and incidents, and the files written; or {"skipped": why}.
    """
    if not trained:
        return {"skipped": "no layer was trained"}
    scored = test_units(trained, events)
    incidents = build_incidents(scored)  # ranked with the units that do not alert too
    alerts = scored.filter(pc.field("is_alert"))
    path = Path(report_folder) / ALERTS_FILE
    write_table(alerts, path)
    write_table(incidents, incidents_path(path))
    json_path, html_path = write_alerts_page(incidents, path, scored)
    logger.info("test alerts: %d alerts in %d incidents, page %s", alerts.num_rows,
                incidents.num_rows, html_path)
    return {"page": html_path.name, "json": json_path.name, "alerts": alerts.num_rows,
            "incidents": incidents.num_rows, "alerts_file": path.name,
            "incidents_file": incidents_path(path).name}
