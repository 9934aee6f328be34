"""Whole pipeline runs for the reliability suite: a tiny unlabeled input, one layer, one epoch.

Without labels the first model is promoted and later ones become challengers, so a run's
registry changes are known in advance (see `training.pipeline.run`).
"""

from __future__ import annotations

import json
from pathlib import Path

PIPELINE = """
import json
from training.pipeline.config import config_from_dict
from training.pipeline.run import run_pipeline
config = config_from_dict({{"workdir": {workdir!r}, "layers": ["layer1"], "seed": {seed},
                           "sources": [{{"type": "json_file", "path": {events!r}}}],
                           "train": {{"epochs": 1}}}})
result = run_pipeline(config)
print(json.dumps({{"version": result.layers[0].version, "stage": result.layers[0].stage}}))
"""


def unlabeled_events(directory: Path, n_events: int = 400, duplicates: int = 0,
                     malformed: int = 0, labels: bool = False) -> Path:
    """Demo events without labels as JSON Lines; the first `duplicates` lines appear twice,
    then `malformed` cut lines (lines n_events + duplicates + 1, ...). `labels` keeps the
    demo's labels."""
    from training.demo.generator import generate_demo_events

    events = generate_demo_events(max(n_events, 100), seed=11)["events"][:n_events]
    lines = []
    for event in events:
        for key in () if labels else ("label", "attack_type", "mitre_technique"):
            event.pop(key, None)
        lines.append(json.dumps(event))
    path = directory / ("labeled.jsonl" if labels else "unlabeled.jsonl")
    cut = ['{"timestamp": "2024-03-04T01:00:00Z", "unterminated": '] * malformed
    path.write_text("\n".join(lines + lines[:duplicates] + cut) + "\n")
    return path


def pipeline_code(workdir: Path, events: Path, seed: int = 0) -> str:
    return PIPELINE.format(workdir=str(workdir), events=str(events), seed=seed)


CLI = """
import sys
from training.cli.main import main
sys.exit(main({argv!r}))
"""


def cli_code(*argv: str) -> str:
    """`maximus-train ARGV` in a child (its exit code is the child's)."""
    return CLI.format(argv=list(argv))


def pipeline_toml(directory: Path, events: Path, workdir: Path) -> Path:
    """A pipeline config of one layer, one epoch, on `events` (JSON Lines)."""
    path = directory / "pipeline.toml"
    path.write_text(f'workdir = "{workdir}"\nlayers = ["layer1"]\n[[sources]]\n'
                    f'type = "json_file"\npath = "{events}"\n[train]\nepochs = 1\n')
    return path
