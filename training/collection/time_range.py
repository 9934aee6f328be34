"""The arguments of a collection run: its time range [start, end) in UTC and its event limit.

Times are datetimes or ISO 8601 text; a naive datetime is taken as UTC, as the original
`collect(start_date=datetime(...))` took it.
"""

from __future__ import annotations

from datetime import datetime, timezone

from training.errors import ConfigError


def as_utc(value: datetime | str | None, name: str) -> datetime | None:
    """`value` as an aware UTC-based datetime (None stays None)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ConfigError(f"{name} must be a datetime or ISO 8601 text, got {value!r}") from None
    if not isinstance(value, datetime):
        raise ConfigError(f"{name} must be a datetime or ISO 8601 text, got {value!r}")
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def check_run(start_date: datetime | str | None, end_date: datetime | str | None,
              max_events: int | None) -> tuple[datetime | None, datetime | None]:
    """(start, end) in UTC after checking the three arguments of a run.

    Raises:
        ConfigError: an unreadable time, start not before end, or max_events < 1.
    """
    start, end = as_utc(start_date, "start_date"), as_utc(end_date, "end_date")
    if start and end and start >= end:
        raise ConfigError(f"start_date must be before end_date, got {start} >= {end}")
    if max_events is not None and (not isinstance(max_events, int) or max_events < 1):
        raise ConfigError(f"max_events must be an integer >= 1 or None, got {max_events!r}")
    return start, end
