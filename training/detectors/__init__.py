"""Detector models: tensors in, tensors out, one module per model (see base.Detector)."""

from training.detectors.base import DETECTORS, Detector, detector_class, register_detector

__all__ = ["DETECTORS", "Detector", "detector_class", "register_detector"]
