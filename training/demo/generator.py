"""Deterministic synthetic security events: labeled attacks on a realistic enterprise background.

`generate_demo_events` simulates one enterprise over `days` days: 40-80 desktops (Windows, a few
Linux developer boxes) in 10.10.x and 192.168.x with stable names and users, and the servers
DC01, DNS01, FS01 (files), PROXY01, WEB01 (public site), JUMP01 (admin jump host), LNX-APP01
and LNX-DB01 (the business app and its database) and SCAN01 (vulnerability scanner and
monitoring). Background (~90% of events) follows office hours and weekdays: DNS, browsing with
lognormal sizes, SMB to the file server, Kerberos/LDAP/RPC to the DC, NTP, intranet and database
traffic, admin SSH/RDP/PsExec, backups and vendor SFTP uploads, visitors and internet noise on
the web server, pings, scheduled vulnerability scans, failed connections, logons (some failing),
process creations and file accesses, odd but benign ones included.

Attacks (~10%) come in several episodes per scenario spread over the window, run from about a
quarter of the desktops (which keep their normal traffic), the exploited app server, the file
server (staged data) and the jump host (stolen admin credentials):

| scenario             | technique | what it looks like                                            |
|----------------------|-----------|---------------------------------------------------------------|
| port_scan            | T1046     | bursts of S0/REJ probes (SF on open ports), ICMP sweeps       |
| ssh_brute_force      | T1110.001 | many short SSH sessions, each a failed logon on a Linux host  |
| c2_beaconing         | T1071.001 | check-ins every 30-300 s with 10-30% jitter, near-fixed sizes |
| data_exfiltration    | T1048     | long uploads over SFTP/FTP/8443, or DNS names with hex labels |
| lateral_movement     | T1021.002 | SMB 445 + RPC 135, admin logon, services.exe > PSEXESVC > cmd |
| privilege_escalation | T1548     | UAC bypass (fodhelper, eventvwr), sudo -u#-1, setuid shell    |

No single field separates attacks from background (the tests keep every one-field decision
stump below 0.9 ROC-AUC); combinations do: a scan is many failed connections from one host to
many ports within minutes, a beacon a steady interval to one destination.

Events carry the canonical field names (`training.demo.records.FIELDS`), null where a field
does not apply, plus `outcome` ("success"/"failure") on authentications. Labels: `label`
("benign"/"malicious"), `attack_type` and `mitre_technique` (both null for benign events).

This module is the public API. The parts: `training.demo.network` (hosts, users, domains, the
office-hours clock), `training.demo.records` (event records and activity that background and
attacks share), `training.demo.background` and `training.demo.host_activity` (the
background) and `training.demo.scenarios` (the attacks).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import orjson

from training.artifacts.atomic import atomic_write
from training.demo.background import background
from training.demo.network import Clock, build_network
from training.demo.scenarios import SCENARIOS
from training.errors import ConfigError

GENERATOR = "training.demo.generator"
VERSION = "1.0"
DEFAULT_START = datetime(2024, 3, 4, tzinfo=timezone.utc)  # a Monday
MAX_EVENTS = 10_000_000

# ---- Public API -------------------------------------------------------------------------------

def _check_int(name: str, value: object, low: int, high: int) -> int:
    """`value` as an int, or a ConfigError naming the parameter, the rule and the value."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return int(value)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def attack_counts(n_events: int) -> dict[str, int]:
    """Events per attack scenario for a document of `n_events` (at least one each)."""
    return {name: max(1, round(s.share * n_events)) for name, s in SCENARIOS.items()}


def generate_demo_events(n_events: int = 10_000, seed: int = 42, start: datetime = DEFAULT_START,
                         days: int = 7) -> dict:
    """Generate a labeled synthetic event document; the same arguments give the same document.

    Args:
        n_events: Number of events, exactly; at least 100 so every scenario appears.
        seed: Seed of the local random generator (a non-negative integer).
        start: Timezone-aware start of the window; events fall in [start, start + days).
        days: Length of the window in days, 1 to 366.

    Returns:
        {"metadata": {generator, version, seed, n_events, n_malicious, attack_share, start, end,
        days, network, scenarios: {name: {technique, count, description}}}, "events": [event
        dicts with the fields of `training.demo.records.FIELDS`, sorted by timestamp]}.

    Raises:
        ConfigError: An argument breaks its rule.
    """
    n_events = _check_int("n_events", n_events, 100, MAX_EVENTS)
    seed = _check_int("seed", seed, 0, 2**63 - 1)
    days = _check_int("days", days, 1, 366)
    if not isinstance(start, datetime) or start.utcoffset() is None:
        raise ConfigError(f"start must be a timezone-aware datetime, got {start!r}")
    start = start.astimezone(timezone.utc)

    # One child generator per part, so adding a scenario leaves the background unchanged.
    net_seq, bg_seq, *scenario_seqs = np.random.SeedSequence(seed).spawn(2 + len(SCENARIOS))
    net = build_network(np.random.default_rng(net_seq))
    clock = Clock(start.hour, start.weekday(), days)
    counts = attack_counts(n_events)
    events: list[dict] = []
    for (name, scenario), seq in zip(SCENARIOS.items(), scenario_seqs):
        events += scenario.generate(np.random.default_rng(seq), net, clock, counts[name])
    n_malicious = sum(counts.values())
    events += background(np.random.default_rng(bg_seq), net, clock, n_events - n_malicious)
    events.sort(key=lambda e: e["_t"])  # stable: equal times keep generation order
    offsets = np.array([event.pop("_t") for event in events], dtype="timedelta64[us]")
    origin = np.datetime64(start.replace(tzinfo=None), "us")
    stamps = np.datetime_as_string(origin + offsets, unit="us")
    for i, (event, stamp) in enumerate(zip(events, stamps.tolist()), start=1):
        event["event_id"] = f"demo-{i:06d}"
        event["timestamp"] = f"{stamp}Z"

    metadata = {
        "generator": GENERATOR, "version": VERSION, "seed": seed, "n_events": n_events,
        "n_malicious": n_malicious, "attack_share": round(n_malicious / n_events, 4),
        "start": _iso(start), "end": _iso(start + timedelta(days=days)), "days": days,
        "network": {"workstations": len(net.workstations),
                    "servers": sorted(h.name for h in net.servers.values())},
        "scenarios": {name: {"technique": s.technique, "count": counts[name],
                             "description": s.description} for name, s in SCENARIOS.items()},
    }
    return {"metadata": metadata, "events": events}


def write_demo_file(path: str | Path = "demo/synthetic_events.json", n_events: int = 10_000,
                    seed: int = 42) -> Path:
    """Generate the demo document and write it as JSON, atomically.

    Through `atomic_write`: a crash leaves the previous file intact.

    Args:
        path: Output file; missing parent folders are created.
        n_events: Number of events (see `generate_demo_events`).
        seed: Seed of the generator.

    Returns:
        The path written.

    Raises:
        ConfigError: An argument breaks its rule.
        WriteError: `path` cannot be written.
    """
    document = generate_demo_events(n_events=n_events, seed=seed)
    path = Path(path)
    with atomic_write(path) as f:
        f.write(orjson.dumps(document))
    return path
