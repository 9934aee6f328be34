"""Timestamp text to an aware datetime: ISO 8601, and the date format Kibana writes by default.

Kibana's Discover exports CSV times in its `dateFormat` setting, by default
"MMM D, YYYY @ HH:mm:ss.SSS" ("Feb 22, 2023 @ 01:00:03.714"), in the browser's time zone but
without naming it. Such text, like ISO 8601 text without an offset, is read as UTC; a zone
written after it ("... 01:00:03.714 +01:00", "Z") is honoured.

    parse_time_text("Feb 22, 2023 @ 01:00:03.714")  # 2023-02-22 01:00:03.714000+00:00
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

# English month abbreviations, as Kibana's default locale writes them (not the C library's
# locale, which `strptime("%b")` would follow).
_MONTHS = {name: number for number, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
_KIBANA = re.compile(
    r"(?P<month>[A-Za-z]{3}) (?P<day>\d{1,2}), (?P<year>\d{4}) @ "
    r"(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d{1,6}))?)?"
    r"\s*(?P<zone>Z|[+-]\d{2}:?\d{2})?")


def parse_time_text(text: str) -> datetime:
    """`text` as an aware datetime (UTC when the text names no zone).

    Raises:
        ValueError: `text` is neither ISO 8601 nor Kibana's default date format.
    """
    text = text.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        parsed = _kibana(text)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


def _kibana(text: str) -> datetime:
    match = _KIBANA.fullmatch(text)
    month = _MONTHS.get(match["month"].lower()) if match else None
    if month is None:
        raise ValueError(text)
    fraction = (match["fraction"] or "").ljust(6, "0")
    parsed = datetime(int(match["year"]), month, int(match["day"]), int(match["hour"]),
                      int(match["minute"]), int(match["second"] or 0), int(fraction))
    zone = match["zone"]
    if zone is None:
        return parsed
    if zone == "Z":
        return parsed.replace(tzinfo=timezone.utc)
    digits = zone[1:].replace(":", "")
    offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return parsed.replace(tzinfo=timezone(offset if zone[0] == "+" else -offset))
