"""Scoring new events with registered models: scores, alerts and the events behind them."""
