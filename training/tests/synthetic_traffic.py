"""A small office network's flows, and the attacks the detector tests inject into it.

Workstations 10.0.0.1.. work in sessions (10-40 busy minutes: DNS, HTTPS to a few favourite
sites, SMB to the file server, a few failed connections) separated by idle time (an NTP or DNS
query now and then). Two realistic, in-range anomalies go on top:

* `fan_out`: one workstation opens SMB connections to 50 peers it never talked to, within one
  5-minute window, each flow shaped like its ordinary file-server traffic (lateral movement);
* `beacon`: one workstation checks in with an external server every 60 s (+-1 s) with
  near-constant sizes, busy or idle (command-and-control);
* `exfiltration`: one workstation uploads 1-3 GB per flow to an external server over HTTPS,
  each flow lasting 20-60 minutes (single events a per-event model can judge).

Everything is drawn from a local numpy generator: the same seed gives the same table.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa

from training.collection.schema import CANONICAL_SCHEMA

T0 = datetime(2024, 3, 4, 8, tzinfo=timezone.utc)
DNS, FILES, NTP = "10.0.1.1", "10.0.1.3", "10.0.1.5"
SITES = [f"93.184.{i}.{10 + i}" for i in range(12)]
C2 = "203.0.113.50"


def host(i: int) -> str:
    return f"10.0.0.{i + 1}"


def _flow(rows: list, seconds: float, src: str, dst: str, port: int, proto: str, state: str,
          sent: float, received: float, duration: float, threat: int = 0, attack: str | None = None
          ) -> None:
    rows.append({"timestamp": T0 + timedelta(seconds=float(seconds)), "source": "synthetic",
                 "event_type": "conn", "source_ip": src, "dest_ip": dst, "dest_port": port,
                 "protocol": proto, "conn_state": state, "bytes_sent": int(sent),
                 "bytes_received": int(received) if state == "SF" else 0,
                 "packets_sent": max(1, int(sent) // 500 + 1),
                 "packets_received": max(0, int(received) // 500 + 1) if state == "SF" else 0,
                 "duration": float(duration), "is_threat": threat, "attack_type": attack})


def office_rows(seed: int, hosts: int = 20, minutes: int = 180) -> list[dict]:
    """Benign flows of `hosts` workstations over `minutes` minutes from T0 (see the docstring)."""
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    for h in range(hosts):
        src = host(h)
        favourites = rng.choice(len(SITES), 4, replace=False)
        busy_until = -1
        for minute in range(minutes):
            if minute > busy_until and rng.random() < 0.06:
                busy_until = minute + int(rng.integers(10, 40))
            t = minute * 60.0
            if minute <= busy_until:
                for _ in range(int(rng.poisson(6)) + 1):
                    at, kind = t + rng.uniform(0, 60), rng.random()
                    if kind < 0.35:
                        _flow(rows, at, src, DNS, 53, "udp", "SF", rng.integers(40, 80),
                              rng.integers(80, 300), rng.uniform(0.001, 0.05))
                    elif kind < 0.85:
                        state = "S0" if rng.random() < 0.03 else "SF"
                        _flow(rows, at, src, SITES[rng.choice(favourites)], 443, "tcp", state,
                              rng.lognormal(7, 1), rng.lognormal(9, 1.2), rng.lognormal(0, 1))
                    else:
                        _flow(rows, at, src, FILES, 445, "tcp", "SF", rng.lognormal(6, 0.8),
                              rng.lognormal(8, 1.5), rng.lognormal(-1, 1))
            elif rng.random() < 0.05:
                server, port = (NTP, 123) if rng.random() < 0.5 else (DNS, 53)
                _flow(rows, t + rng.uniform(0, 60), src, server, port, "udp", "SF", 48, 48,
                      rng.uniform(0.001, 0.02))
    return rows


def fan_out_rows(seed: int, attacker: int, minute: int, peers: int = 50) -> list[dict]:
    """`attacker` opens SMB to `peers` new internal addresses in minutes minute..minute + 4."""
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    for p in range(peers):
        _flow(rows, minute * 60.0 + rng.uniform(0, 240), host(attacker), f"10.0.3.{p + 1}", 445,
              "tcp", "SF", rng.lognormal(6, 0.8), rng.lognormal(8, 1.5), rng.lognormal(-1, 1),
              threat=1, attack="lateral_movement")
    return rows


def beacon_rows(seed: int, infected: int, first_minute: int, count: int) -> list[dict]:
    """`infected` checks in with C2 every 60 s (+-1 s), `count` times from `first_minute`."""
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    for k in range(count):
        _flow(rows, (first_minute + k) * 60.0 + 20 + rng.uniform(-1, 1), host(infected), C2, 443,
              "tcp", "SF", rng.integers(290, 310), rng.integers(140, 160), rng.uniform(0.2, 0.3),
              threat=1, attack="c2_beaconing")
    return rows


def exfiltration_rows(seed: int, infected: int, minute: int, count: int = 20) -> list[dict]:
    """`count` long HTTPS uploads of 1-3 GB from `infected`, starting after `minute`."""
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    for _ in range(count):
        _flow(rows, minute * 60.0 + rng.uniform(0, 3600), host(infected), C2, 443, "tcp", "SF",
              rng.uniform(1e9, 3e9), rng.uniform(2e5, 1e6), rng.uniform(1200, 3600),
              threat=1, attack="data_exfiltration")
    return rows


def table(rows: list[dict]) -> pa.Table:
    """Canonical events, sorted by time, with ids e0, e1, ..."""
    rows = sorted(rows, key=lambda r: r["timestamp"])
    for i, row in enumerate(rows):
        row["event_id"] = f"e{i}"
    return pa.Table.from_pylist(rows, schema=CANONICAL_SCHEMA)
