"""`maximus-train`: one command-line tool over the public API.

Results go to stdout, logs to stderr. Exit codes: 0 success, 2 bad usage or configuration,
1 any other pipeline error (unreadable input, inconsistent checkpoint). Every option is
accepted with dashes or underscores (--max-events, --max_events).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pyarrow.compute as pc

from training.cli.options import exit_code, option, source_flags, sources_from_flags
from training.cli.output import command_output
from training.cli.parser import CommandParser, add_global_flags, help_command, typed_flags
from training.collection.collector import DataCollector
from training.collection.no_records import (
    inputs_without_records, no_records_warning, unmatched_label_maps,
)
from training.collection.quarantine_file import QUARANTINE_FILE, common_reasons, read_quarantine
from training.collection.resume_state import committed_stats
from training.errors import CheckpointError, SchemaError
from training.paths import collected_dir
from training.sources.config import DataSourceType

logger = logging.getLogger(__name__)


def _summary(table, seconds: float) -> str:
    n = table.num_rows
    labels = Counter(table["is_threat"].to_pylist())
    lines = [f"collected {n:,} events in {seconds:.2f} s ({n / max(seconds, 1e-9):,.0f} events/s)",
             f"labels: benign {labels[0]:,} · threat {labels[1]:,} · unknown {labels[-1]:,}"]
    if n:
        threats = table.filter(pc.equal(table["is_threat"], 1))
        kinds = Counter(threats["attack_type"].to_pylist())
        lines.append("attack types: " + ", ".join(f"{k} {v:,}" for k, v in kinds.most_common()))
        types = Counter(table["event_type"].to_pylist())
        lines.append("event types: " + ", ".join(f"{k} {v:,}" for k, v in types.most_common()))
        times = pc.min_max(table["timestamp"])
        lines.append(f"time range: {times['min']} .. {times['max']}")
    return "\n".join(lines)


def cmd_collect(args: argparse.Namespace) -> int:
    sources = sources_from_flags(args, args.source)
    for source in sources:
        paged = source.source_type is DataSourceType.ELASTIC
        if args.block_size is not None and not paged:
            source.connection_params["block_size"] = args.block_size
        if args.slices is not None and paged:
            source.connection_params["slices"] = args.slices
    if args.batch_size is not None:  # replace() validates it like the constructor
        sources = [replace(source, batch_size=args.batch_size) for source in sources]
    collector = DataCollector(sources, output_dir=args.output, deduplicate=not args.no_dedup,
                              checkpoint_every=args.checkpoint_every)
    started = time.perf_counter()
    before = _committed(Path(args.output))
    try:
        events_dir = collector.collect_to(args.start, args.end, args.max_events,
                                          resume_from_checkpoint=not args.no_resume)
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM (`Terminated`), kept as it was
        raise type(exc)(_kept(Path(args.output), before)) from None
    stats = collector.get_stats()
    stats["seconds"] = round(time.perf_counter() - started, 3)
    stats["events_dir"] = str(events_dir)
    print(json.dumps(stats, indent=2, sort_keys=True))
    for name in inputs_without_records(collector):
        logger.warning("%s", no_records_warning(name))
    for line in unmatched_label_maps(collector):
        logger.warning("%s", line)
    _quarantined(stats, Path(args.output), before or {})
    return 0


def _committed(output: Path) -> dict | None:
    """The counters committed in `output` (None: nothing, or a checkpoint the collector will
    refuse with its own message)."""
    try:
        return committed_stats(output)
    except CheckpointError:
        return None


def _kept(output: Path, before: dict | None) -> str:
    """What an interrupted collection kept: the events of its last checkpoint, where a rerun
    resumes; what it read after that checkpoint is not kept."""
    after = _committed(output)
    if after is None:
        gone = "" if output.is_dir() else f"; {output}, which it made, is removed"
        return f"nothing was kept (no batch had been committed){gone}"
    now, earlier = after.get("events", 0), (before or {}).get("events", 0)
    if now == earlier:
        return (f"nothing of this run was kept (no batch had been committed); {output} holds "
                f"the {now:,} events collected before it")
    ours = f" ({now - earlier:,} from this run)" if earlier else ""
    return (f"the events up to its last checkpoint are kept: {now:,} in {output / 'events'}"
            f"{ours}; run the same command again to resume there")


def _quarantined(stats: dict, output: Path, before: dict) -> None:
    """Warn of each source with records quarantined by this run (`before`: the counts
    committed before it), naming their most common reasons (the counts were in the JSON alone:
    754 of 2,001 rows of a day's file went unnoticed, trial R); raise when no source gave an
    event, as the pipeline does: such an output holds nothing to train or score on, and a
    script that goes on with it would fail later, farther from why.

    Raises:
        SchemaError: every record of the collection was quarantined.
    """
    quarantine = output / QUARANTINE_FILE
    for name, counts in stats.get("sources", {}).items():
        bad = counts.get("quarantined", 0)
        earlier = before.get("sources", {}).get(name, {})
        new, read = bad - earlier.get("quarantined", 0), counts.get("rows", 0) - earlier.get(
            "rows", 0)
        if not new or not quarantine.is_file():
            continue
        why = common_reasons(read_quarantine(quarantine, name))
        if bad != counts.get("rows"):
            logger.warning("source %s: %s of the %s records read this run quarantined%s, by "
                           "reason: %s; the reason of each is in %s", name, f"{new:,}",
                           f"{read:,}", f" ({bad:,} in all)" if bad != new else "", why,
                           quarantine)
        elif stats.get("events"):
            logger.warning("source %s: every record (%s) was quarantined, by reason: %s; the "
                           "reason of each is in %s", name, f"{bad:,}", why, quarantine)
        else:
            raise SchemaError(f"no event collected: every record ({bad:,}) of "
                              f"source {name} was quarantined, by reason: {why}; the reason of "
                              f"each is in {quarantine}")


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="maximus-train",
        description="MAXIMUS training pipeline: collect security telemetry and build detectors.",
        epilog="The global options work before or after the command (maximus-train -v score "
               "... or maximus-train score ... -v). `maximus-train COMMAND --help` describes a "
               "command. Exit codes: 0 success, 1 a pipeline error, 2 bad usage or "
               "configuration.")
    add_global_flags(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    parser.set_defaults(run=help_command(parser))

    collect = commands.add_parser(
        "collect", help="collect events from files or Elasticsearch into a resumable output directory",
        description="Read every --source, map events onto the canonical schema, quarantine bad "
                    "records, drop duplicates, and write Parquet parts under OUTPUT/events. "
                    "Rerunning resumes after the last checkpoint (new lines of growing files "
                    "are picked up); statistics are printed as JSON. Elasticsearch credentials "
                    "come from MAXIMUS_ES_API_KEY, or MAXIMUS_ES_USERNAME and "
                    "MAXIMUS_ES_PASSWORD; TLS from MAXIMUS_ES_CA_CERTS and "
                    "MAXIMUS_ES_VERIFY_CERTS.")
    option(collect, "--source", action="append", required=True, metavar="[NAME=]TYPE:PATH",
           help="e.g. zeek:/var/log/zeek, suricata:eve.json, csv:exports/*.csv, "
                "es:https://es01:9200/logs-*; TYPE one of zeek, suricata, json, csv, parquet, "
                "windows, es; repeatable")
    option(collect, "--output", type=Path, default=collected_dir(),
           help="output directory ($MAXIMUS_DATA_ROOT/data/collected)")
    option(collect, "--start", help="keep events at or after this ISO 8601 time (default: "
                                    "from the first)")
    option(collect, "--end", help="keep events before this ISO 8601 time (default: to the last)")
    option(collect, "--max-events", type=int, help="stop after this many events (default: all)")
    source_flags(collect, option)
    option(collect, "--block-size", type=int, help="bytes read per batch (default 16 MiB)")
    option(collect, "--batch-size", type=int,
           help="documents per page for Elasticsearch sources (default 1000)")
    option(collect, "--slices", type=int,
           help="parallel sliced reads for Elasticsearch sources (default 1)")
    option(collect, "--checkpoint-every", type=int, metavar="BATCHES",
           help="a checkpoint after every BATCHES batches (default: every 5 s, and at the end)")
    option(collect, "--no-resume", action="store_true",
           help="refuse to continue an existing collection in OUTPUT")
    option(collect, "--no-dedup", action="store_true", help="keep duplicate events")
    collect.set_defaults(run=cmd_collect)

    from training.cli.models import add_model_commands  # retrain, score
    from training.cli.pipeline import add_pipeline_commands  # pipeline, demo, each stage
    from training.cli.registry import add_registry_command

    add_pipeline_commands(commands, option)
    add_registry_command(commands, option)
    add_model_commands(commands, option)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command (`argv` defaults to the process's arguments); returns the exit code."""
    argv = pass_through(sys.argv[1:] if argv is None else list(argv))
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help, or a usage error already printed on one line
        return exit_.code if isinstance(exit_.code, int) else 2
    with command_output(args.verbose, args.quiet):
        return exit_code(lambda: args.run(args), args.verbose, typed_flags(args))


def pass_through(argv: list[str]) -> list[str]:
    """`tune -- FLAGS` and `train LAYER -- FLAGS` as `tune FLAGS`, `train LAYER FLAGS`: the
    `--` of the spelling that handed the flags on to the script."""
    for at, token in enumerate(argv):
        if token.startswith("-"):
            continue  # a global flag before the command
        after = at + {"tune": 1, "train": 2}.get(token, len(argv))
        if after < len(argv) and argv[after] == "--":
            return argv[:after] + argv[after + 1:]
        return argv
    return argv


if __name__ == "__main__":
    sys.exit(main())
