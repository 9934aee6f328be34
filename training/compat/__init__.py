"""Shims for code written against the original MAXIMUS training package that need more than a
re-export: each adapts one original call shape onto this package's API."""
