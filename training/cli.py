"""`maximus-train`: one command-line tool over the public API.

Results go to stdout, logs to stderr. Exit codes: 0 success, 2 bad usage or configuration,
1 any other pipeline error (unreadable input, inconsistent checkpoint). Every option is
accepted with dashes or underscores (--max-events, --max_events).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import pyarrow.compute as pc

from training.data_collection import DataCollector, DataSource, DataSourceType
from training.errors import ConfigError, PipelineError
from training.paths import collected_dir

logger = logging.getLogger("training.cli")

SOURCE_ALIASES = {
    "json": DataSourceType.JSON_FILE, "jsonl": DataSourceType.JSON_FILE,
    "csv": DataSourceType.CSV_FILE, "parquet": DataSourceType.PARQUET_FILE,
    "zeek": DataSourceType.ZEEK_LOGS, "suricata": DataSourceType.SURICATA_LOGS,
    "windows": DataSourceType.WINDOWS_EVENTS, "es": DataSourceType.ELASTIC,
    **{t.value: t for t in DataSourceType},
}
# Elasticsearch credentials and TLS settings come from the environment, never from flags (which
# other users of the machine can read in the process list).
ES_ENVIRONMENT = {"MAXIMUS_ES_API_KEY": "api_key", "MAXIMUS_ES_USERNAME": "username",
                  "MAXIMUS_ES_PASSWORD": "password", "MAXIMUS_ES_CA_CERTS": "ca_certs"}


def _option(parser: argparse.ArgumentParser, name: str, **kwargs: object) -> None:
    """Add --some-name and its --some_name spelling."""
    flags = [name] + (["--" + name[2:].replace("-", "_")] if "-" in name[2:] else [])
    parser.add_argument(*flags, **kwargs)


def parse_source(spec: str, index: int, default_label: str | None,
                 environ: Mapping[str, str] = os.environ) -> DataSource:
    """[NAME=]TYPE:PATH, e.g. zeek:/var/log/zeek or clean=csv:exports/*.csv; for Elasticsearch
    the PATH is a URL whose path is the index: es:https://es01:9200/logs-*,zeek-*."""
    name, _, rest = spec.rpartition("=") if "=" in spec.split(":", 1)[0] else ("", "", spec)
    kind, sep, path = rest.partition(":")
    if not sep or not path:
        raise ConfigError(f"--source must look like TYPE:PATH or NAME=TYPE:PATH, got {spec!r}")
    if kind not in SOURCE_ALIASES:
        raise ConfigError(f"unknown source type {kind!r} in {spec!r}; use one of "
                          f"{', '.join(sorted(SOURCE_ALIASES))}")
    source_type = SOURCE_ALIASES[kind]
    params = _es_params(path, environ) if source_type is DataSourceType.ELASTIC else {"path": path}
    return DataSource(name=name or f"{kind}{index}", source_type=source_type,
                      connection_params=params, default_label=default_label)


def _es_params(url: str, environ: Mapping[str, str]) -> dict:
    """hosts and index from es:SCHEME://HOST:PORT/INDEX, credentials from the environment."""
    scheme, _, rest = url.partition("://")
    host, _, index = rest.partition("/")
    if not scheme or not host or not index:
        raise ConfigError("an Elasticsearch --source looks like es:https://es01:9200/logs-* "
                          "(the URL path is the index, alias or pattern)")
    params: dict = {"hosts": f"{scheme}://{host}", "index": index}
    params.update({key: environ[var] for var, key in ES_ENVIRONMENT.items() if environ.get(var)})
    verify = environ.get("MAXIMUS_ES_VERIFY_CERTS", "").strip().lower()
    if verify:
        params["verify_certs"] = verify not in ("0", "false", "no")
    return params


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
    sources = [parse_source(s, i, args.default_label) for i, s in enumerate(args.source)]
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
    events_dir = collector.collect_to(args.start, args.end, args.max_events,
                                      resume_from_checkpoint=not args.no_resume)
    stats = collector.get_stats()
    stats["seconds"] = round(time.perf_counter() - started, 3)
    stats["events_dir"] = str(events_dir)
    print(json.dumps(stats, indent=2, sort_keys=True))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maximus-train",
        description="MAXIMUS training pipeline: collect security telemetry and build detectors.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    collect = commands.add_parser(
        "collect", help="collect events from files or Elasticsearch into a resumable output directory",
        description="Read every --source, map events onto the canonical schema, quarantine bad "
                    "records, drop duplicates, and write Parquet parts under OUTPUT/events. "
                    "Rerunning resumes after the last checkpoint (new lines of growing files "
                    "are picked up); statistics are printed as JSON. Elasticsearch credentials "
                    "come from MAXIMUS_ES_API_KEY, or MAXIMUS_ES_USERNAME and "
                    "MAXIMUS_ES_PASSWORD; TLS from MAXIMUS_ES_CA_CERTS and "
                    "MAXIMUS_ES_VERIFY_CERTS.")
    _option(collect, "--source", action="append", required=True, metavar="[NAME=]TYPE:PATH",
            help="e.g. zeek:/var/log/zeek, suricata:eve.json, csv:exports/*.csv, "
                 "es:https://es01:9200/logs-*; repeatable")
    _option(collect, "--output", type=Path, default=collected_dir(),
            help=f"output directory (default {collected_dir()})")
    _option(collect, "--start", help="keep events at or after this ISO 8601 time")
    _option(collect, "--end", help="keep events before this ISO 8601 time")
    _option(collect, "--max-events", type=int, help="stop after this many events")
    _option(collect, "--default-label", help="label for records without one, e.g. malicious")
    _option(collect, "--block-size", type=int, help="bytes read per batch (default 16 MiB)")
    _option(collect, "--batch-size", type=int,
            help="documents per page for Elasticsearch sources (default 1000)")
    _option(collect, "--slices", type=int,
            help="parallel sliced reads for Elasticsearch sources (default 1)")
    _option(collect, "--checkpoint-every", type=int, default=1, help="batches per checkpoint")
    _option(collect, "--no-resume", action="store_true",
            help="refuse to continue an existing collection in OUTPUT")
    _option(collect, "--no-dedup", action="store_true", help="keep duplicate events")
    collect.set_defaults(run=cmd_collect)

    from training.cli_models import add_model_commands  # registry, retrain, score
    from training.cli_pipeline import add_pipeline_commands  # pipeline, demo, each stage

    add_pipeline_commands(commands, _option)
    add_model_commands(commands, _option)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.run(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
