"""`maximus-train score --follow | --once`: live scoring of growing logs, thin over
`training.scoring.follow`.

    maximus-train score --model layer1_vae --input zeek:/opt/zeek/logs/current --follow \\
        --output scores.jsonl --alerts alerts.jsonl --elasticsearch https://es01:9200/alerts
    maximus-train score --model fused ...          # the fused event score, same flags

The alert-rate guard (`--alert-factor`, `--max-alert-rate`) judges a rolling window of the
latest `--guard-window` units: past its bound it logs one warning per excursion (stderr) and
goes on scoring; it never makes the scorer exit.

SIGTERM and SIGINT stop it cleanly: the batch in hand is scored, written and checkpointed, and
it exits 0. A SIGKILLed run resumes from its last checkpoint (`--state`). Elasticsearch
credentials come from the environment, as for an Elasticsearch --input (MAXIMUS_ES_API_KEY or
MAXIMUS_ES_USERNAME/MAXIMUS_ES_PASSWORD, MAXIMUS_ES_CA_CERTS, MAXIMUS_ES_VERIFY_CERTS).
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Callable
from pathlib import Path

from training.artifacts.folders import check_not_link
from training.errors import ConfigError

Option = Callable[..., None]
# Flags that mean something only to live scoring (a batch `score` refuses them). Their
# defaults are None so that a given one can be told from an absent one.
FOLLOW_ONLY = ("--alerts", "--incidents", "--state", "--elasticsearch", "--window-grace",
               "--guard-window", "--switch-model")


def add_follow_options(score: argparse.ArgumentParser, option: Option) -> None:
    """The live-scoring flags of `score`."""
    mode = score.add_mutually_exclusive_group()
    option(mode, "--follow", action="store_true",
           help="keep reading the --input files (or folders) as they grow, rotation included; "
                "stop with SIGTERM or Ctrl-C")
    option(mode, "--once", action="store_true",
           help="as --follow, but score what the files hold now and exit (for cron); the next "
                "run goes on where this one stopped")
    option(score, "--alerts", type=Path,
           help="with --follow/--once: ECS alert documents, appended as JSON Lines (required)")
    option(score, "--incidents", type=Path,
           help="with --follow/--once: incident updates (an incident each time it gains "
                "alerts), ECS documents appended as JSON Lines (default: beside --alerts, "
                "ALERTS.incidents.jsonl)")
    option(score, "--state", type=Path,
           help="with --follow/--once: folder of read positions and checkpoints (default: "
                "OUTPUT.state)")
    option(score, "--elasticsearch", metavar="URL",
           help="with --follow/--once: also index alerts and incident updates into this "
                "index, e.g. "
                "https://es01:9200/maximus-alerts (credentials from MAXIMUS_ES_* variables)")
    option(score, "--poll-interval", type=float, default=0.25,
           help="with --follow: seconds between reads of the files (default 0.25)")
    option(score, "--checkpoint-interval", type=float, default=2.0, metavar="SECONDS",
           help="with --follow: least seconds between checkpoints of the --state (default 2; "
                "0: after every poll); a killed run scores again what it read since the last")
    option(score, "--window-grace", type=float, metavar="SECONDS",
           help="with --follow/--once and a layer-2/3 model: seconds of event time a window "
                "waits past its end for events logged late (default 300, Zeek's TCP "
                "inactivity timeout); events later still are quarantined and counted")
    option(score, "--switch-model", action="store_true", default=None,
           help="with --follow/--once: a --state made by another model (another version "
                "after a promotion) goes on with this one from its read positions and into "
                "the same outputs; the old model's totals and open incidents start again "
                "(logged once); without it such a state is refused")
    # No default here: it is the guard's own (training.scoring.rolling_guard, not imported
    # before a command runs: scipy alone would double the start-up time).
    option(score, "--guard-window", type=int, metavar="UNITS",
           help="with --follow/--once: the alert-rate guard judges the latest UNITS scored "
                "(default 10,000); past --alert-factor or --max-alert-rate it "
                "warns once per excursion and goes on scoring")


def cmd_follow(args: argparse.Namespace) -> int:
    from training.collection.no_records import no_records_warning
    from training.cli.options import open_registry, parse_source
    from training.cli.recorded_sources import registered_metadata, sources_as_trained
    from training.scoring.follow import QUARANTINE_FILE, FollowOutputs, follow_events
    from training.scoring.follow_dedup import DEFAULT_RECENT
    from training.scoring.follow_windows import DEFAULT_GRACE
    from training.scoring.tables import incidents_path
    from training.scoring.rolling_guard import DEFAULT_WINDOW

    if args.alerts is None:
        raise ConfigError("--follow and --once need --alerts FILE.jsonl (the ECS alerts)")
    if args.guard_window is not None and args.guard_window < 1:  # before any model loads
        raise ConfigError(f"--guard-window must be >= 1 units, got {args.guard_window}")
    es = None
    if args.elasticsearch:
        es = parse_source(f"es:{args.elasticsearch}", 0, None).connection_params
    registry = open_registry(args)  # reads only
    sources = sources_as_trained(args, args.input, registered_metadata(registry, args),
                                 "--input")
    state = args.state or args.output.with_name(args.output.name + ".state")
    if args.state is None:  # a folder picked beside the output, not given: never a link
        check_not_link(state, "give --state FOLDER")
    outputs = FollowOutputs(alerts=args.alerts, scores=args.output, elasticsearch=es,
                            state=state,
                            incidents=args.incidents or incidents_path(args.alerts))
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        summary = follow_events(registry, args.model,
                                sources, outputs, version=args.version, stage=args.stage,
                                alias=args.alias, once=args.once,
                                poll_seconds=args.poll_interval, stop=stop,
                                alert_factor=args.alert_factor,
                                max_alert_rate=(args.max_alert_rate if isinstance(
                                    args.max_alert_rate, float) else None),
                                guard_window=(DEFAULT_WINDOW if args.guard_window is None
                                              else args.guard_window),
                                window_grace=(DEFAULT_GRACE if args.window_grace is None
                                              else args.window_grace),
                                deduplicate=not args.no_dedup,
                                switch_model=bool(args.switch_model),
                                checkpoint_seconds=args.checkpoint_interval)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    counts = summary.counts
    refused = ""
    if es is not None:
        refused = (f", {counts['refused']:,} alerts refused by Elasticsearch (kept in "
                   f"{Path(outputs.state) / 'refused.jsonl'})")
    print(f"followed with {summary.model_name} {summary.version}: {counts['events']:,} events "
          f"scored, {counts['alerts']:,} alerts to {args.alerts}, "
          f"{counts['incident_updates']:,} incident updates to {outputs.incidents}{refused}; "
          "this model's totals in the state")
    if counts["quarantined"]:  # as batch score says it; the file holds them all
        print(quarantined_line(counts["quarantined"], Path(outputs.state) / QUARANTINE_FILE))
    if counts.get("duplicates"):  # as batch score says it
        print(f"{counts['duplicates']:,} duplicate events (an event id seen before, among the "
              f"last {DEFAULT_RECENT:,} kept) dropped; --no-dedup keeps them")
    if "late" in counts:  # a window layer
        print(f"windows: {_events(summary.held)} held in open windows (scored when event time "
              f"passes their end by the grace), {_events(counts['late'])} that came after "
              "their window closed quarantined (this model's totals in the state)")
    if summary.lost_files:  # each was warned of when found
        print(f"{summary.lost_files:,} file{'' if summary.lost_files == 1 else 's'} removed "
              f"before {'it was' if summary.lost_files == 1 else 'they were'} read to the end "
              f"in this run: {summary.lost_bytes:,} bytes left unread were not scored")
    for path in summary.empty_inputs:  # as batch score names them
        print(f"{no_records_warning(path)}: nothing scored from it yet")
    for path, waiting in summary.unfinished.items():  # a record that never ends never scores
        print(f"{path}: its last {waiting:,} bytes end no line yet: read once a newline ends "
              "them (a line being written, or a last line without one)")
    if summary.excursions:
        print(f"alert rate: {summary.excursions:,} excursion(s) past the guard's bound in this "
              "run, each warned about once on stderr")
    return 0


def quarantined_line(count: int, path: str | Path) -> str:
    """What `score` and `score --follow`/`--once` print of the records they quarantined."""
    return (f"{count:,} quarantined record{'' if count == 1 else 's'} (file, line, reason of "
            f"each): {path}")


def _events(n: int) -> str:
    return f"{n:,} event{'' if n == 1 else 's'}"
