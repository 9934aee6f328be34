"""Text for a terminal: what it would act on instead of showing, written as escapes."""

from __future__ import annotations

import re

# What a terminal acts on instead of showing: C0 controls but tab and line feed (ESC begins the
# sequences that recolour, retitle or clear it; CR rewrites the line), DEL, the C1 controls
# (0x9b is a one-byte CSI) and the bidirectional overrides that reorder the text around them.
_ACTIVE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def inert(text: str) -> str:
    """`text` with each character a terminal would act on written as its escape ("\\x1b").

    Field names and values of the logs read reach warnings and errors (a label leak's field
    and values, a source's field names): a log line must not recolour, retitle or clear the
    analyst's terminal, or rewrite the lines above it (red-team trial).
    """
    return _ACTIVE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
