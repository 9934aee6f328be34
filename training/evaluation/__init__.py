"""Evaluation of detectors: metrics on scores and labels, latency, and the reports.

`training.evaluation.evaluator` holds the public API (`ModelEvaluator`, `EvaluationMetrics`,
`evaluate_scores`); the modules here are its parts: `metrics` (pure functions of arrays),
`score_metrics` (the scores-level evaluation), `thresholds`, `result` (`EvaluationMetrics`), `latency`,
`figures`, `report_text` and `report_html`; `bootstrap` (paired bootstrap intervals) and
`harness` (every layer's detectors beside fixed baselines on real captures).
"""
