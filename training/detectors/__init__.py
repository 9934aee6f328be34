"""Detector models: tensors in, tensors out, one module per model (see base.Detector).

The layers' own networks (vae, gnn, tcn) and the row detectors any layer can choose instead
(rows: ecod, knn, iforest, autoencoder; the one-pass ones share fitted.FittedDetector).
"""

from training.detectors.base import DETECTORS, Detector, detector_class, register_detector
from training.detectors.rows import (
    ROW_DETECTORS, RowDetector, register_row_detector, row_detector, row_detector_names,
)

__all__ = ["DETECTORS", "Detector", "ROW_DETECTORS", "RowDetector", "detector_class",
           "register_detector", "register_row_detector", "row_detector", "row_detector_names"]
