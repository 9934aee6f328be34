"""Elasticsearch collection throughput: events/s through the official client against the local
stand-in server (`training/tests/fake_elasticsearch.py`; no real cluster can be installed here).

Documents: the 5,000 real Suricata EVE records of
../shared/datasets/suricata/slips_test6-malicious.suricata.json shaped as Filebeat's Suricata
module indexes them (`training/tests/filebeat_docs.py`), repeated to --docs documents, each
repetition a day later, every document with its own `_id`.

The server runs in a child process (so it does not share the collector's interpreter lock) and
reports the CPU time it spent (`GET /_fake/stats`), stated next to every figure: on a real cluster
that work happens on the cluster's machines. Timed per repeat, alternating:

    client   the official client paging through the index (PIT + search_after, no processing)
    es/1     DataCollector.collect_table() over the Elasticsearch source, slices=1
    es/4     the same with slices=4
    jsonl    DataCollector.collect_table() over the same documents as a JSON Lines file

    python benchmarks/bench_elasticsearch.py                  # 200,000 documents, 5 repeats
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]
EVE = REPO.parent / "shared/datasets/suricata/slips_test6-malicious.suricata.json"
sys.path.insert(0, str(REPO))

from training.collection.collector import DataCollector, DataSource  # noqa: E402

INDEX = "filebeat-suricata"
PAGE = 1000

SERVE = """
import sys, orjson
from training.tests.fake_elasticsearch import FakeElasticsearch
docs = [{"_id": f"d{i}", "_source": orjson.loads(line)} for i, line in enumerate(open(sys.argv[1], "rb"))]
with FakeElasticsearch({sys.argv[2]: docs}) as es:
    print(es.url, flush=True)
    sys.stdin.read()  # serve until the parent closes stdin
"""


def write_documents(path: Path, n: int) -> None:
    from datetime import datetime, timedelta

    from training.tests.filebeat_docs import suricata_eve

    if path.exists() and sum(1 for _ in open(path, "rb")) == n:
        return
    base, offset = [], 0
    for line in EVE.read_bytes().splitlines(keepends=True):
        base.append(suricata_eve(json.loads(line), offset, str(EVE)))
        offset += len(line)
    with open(path, "wb") as out:
        for i in range(n):
            doc = base[i % len(base)]
            copy = dict(doc, **{"@timestamp": (
                datetime.fromisoformat(doc["@timestamp"]) + timedelta(days=i // len(base))
            ).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"})
            out.write(orjson.dumps(copy, option=orjson.OPT_APPEND_NEWLINE))


def server_cpu(url: str) -> float:
    with urllib.request.urlopen(url + "/_fake/stats", timeout=30) as response:
        return json.loads(response.read())["cpu_seconds"]


def client_only(url: str) -> int:
    import elasticsearch
    from elasticsearch.serializer import OrjsonSerializer

    client = elasticsearch.Elasticsearch(url, serializer=OrjsonSerializer())
    pit = client.open_point_in_time(index=INDEX, keep_alive="5m")["id"]
    sort = [{"@timestamp": {"order": "asc"}}, {"_shard_doc": {"order": "asc"}}]
    n, after = 0, None
    while True:
        extra = {"search_after": after} if after else {}
        page = client.search(pit={"id": pit, "keep_alive": "5m"}, sort=sort, size=PAGE,
                             track_total_hits=False, **extra)
        pit, hits = page["pit_id"], page["hits"]["hits"]
        n += len(hits)
        if len(hits) < PAGE:
            break
        after = hits[-1]["sort"]
    client.close_point_in_time(id=pit)
    client.close()
    return n


def collector(url: str, slices: int) -> int:
    source = DataSource("bench", "elasticsearch", {"hosts": url, "index": INDEX, "slices": slices},
                        batch_size=PAGE)
    return DataCollector([source], progress=False).collect_table().num_rows


def jsonl(path: Path) -> int:
    return DataCollector([DataSource("bench", "json_file", {"path": str(path)})],
                         progress=False).collect_table().num_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    args = parser.parse_args()
    if not EVE.exists():
        sys.exit(f"needs {EVE} (../shared/datasets)")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"es_docs_{args.docs}.jsonl"
    write_documents(path, args.docs)
    server = subprocess.Popen([sys.executable, "-c", SERVE, str(path), INDEX], cwd=REPO,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip()
        runs = {"client": lambda: client_only(url), "es/1": lambda: collector(url, 1),
                "es/4": lambda: collector(url, 4), "jsonl": lambda: jsonl(path)}
        for run in runs.values():  # warm-up: imports, page cache, the server's encoded sources
            run()
        times: dict[str, list[float]] = {k: [] for k in runs}
        served: dict[str, list[float]] = {k: [] for k in runs}
        for _ in range(args.repeats):
            for name, run in runs.items():
                cpu, start = server_cpu(url), time.perf_counter()
                n = run()
                times[name].append(time.perf_counter() - start)
                served[name].append(server_cpu(url) - cpu)
                if n != args.docs:
                    raise RuntimeError(f"{name}: {n} events, expected {args.docs}")
    finally:
        server.stdin.close()
        server.wait(timeout=60)
    report = []
    for name in runs:
        seconds, cpu = statistics.median(times[name]), statistics.median(served[name])
        report.append({"run": name, "docs": args.docs, "seconds": seconds,
                       "events_per_s": args.docs / seconds, "server_cpu_s": cpu})
        print(f"{name:7s} {args.docs:,} docs  {seconds:6.2f} s  {args.docs / seconds:>10,.0f} events/s"
              f"   server CPU {cpu:5.2f} s", flush=True)
    (args.out / "elasticsearch.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
