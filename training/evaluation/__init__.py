"""Evaluation of detectors: metrics on scores and labels, latency, and the reports.

`training.evaluator` holds the public API (`ModelEvaluator`, `EvaluationMetrics`,
`evaluate_scores`); the modules here are its parts: `metrics` (pure functions of arrays),
`scores` (the scores-level evaluation), `result` (`EvaluationMetrics`), `latency`,
`figures`, `report_text` and `report_html`.
"""
