"""What a person watching a run sees: `progress` (a bar on a terminal, a few log lines elsewhere)."""
