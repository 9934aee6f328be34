"""MAXIMUS training pipeline: security telemetry in, trained and versioned detectors out."""

__version__ = "0.1.0"
