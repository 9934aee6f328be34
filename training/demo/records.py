"""Event records of the synthetic demo data (see `training.demo.generator` for the overview), and
activity that background and attacks share.

Numbers that benign traffic also produces (failed-connection sizes, SSH session sizes, admin
tools) come from the same helpers, so no single field gives an attack away.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from training.demo.network import US, Host

FIELDS: tuple[str, ...] = (
    "event_id", "timestamp", "event_type", "source_ip", "source_port", "dest_ip", "dest_port",
    "protocol", "service", "bytes_sent", "bytes_received", "packets_sent", "packets_received",
    "duration", "conn_state", "direction", "user", "host", "process", "parent_process",
    "command_line", "file_path", "domain", "severity", "outcome",
    "label", "attack_type", "mitre_technique",
)
COMMON_PORTS = (21, 22, 23, 25, 53, 80, 110, 135, 139, 143, 443, 445, 993, 1433, 3306, 3389,
                5432, 5900, 5985, 8080, 8443, 9100)


# ---- Event records ---------------------------------------------------------------------------

def new_event(t: int, event_type: str, **fields: object) -> dict:
    """An event with every field present (null unless given); `_t` holds its time offset."""
    event = dict.fromkeys(FIELDS)
    event.update(fields, event_type=event_type, label="benign", _t=t)
    return event


def conn(t: int, src: str, sport: int, dst: str, dport: int, proto: str, service: str | None,
         bs: int, br: int, dur: float, state: str, direction: str, host: str,
         event_type: str = "network_connection", **extra: object) -> dict:
    """A flow record (Zeek conn style); packet counts follow from bytes and state."""
    if state == "S0":
        ps, pr = 1 + sport % 3, 0  # SYN retransmissions, no answer
    elif state in ("REJ", "RSTO", "RSTR", "SH", "OTH"):
        ps, pr = 1 + (sport % 2) * (state != "REJ"), int(state != "SH")
    else:
        hs = 2 if proto == "tcp" else 0  # handshake and teardown
        ps, pr = 1 + hs + bs // 1380, 1 + hs + br // 1380
    return new_event(t, event_type, source_ip=src, source_port=sport, dest_ip=dst, dest_port=dport,
                     protocol=proto, service=service, bytes_sent=bs, bytes_received=br,
                     packets_sent=ps, packets_received=pr, duration=round(dur, 6),
                     conn_state=state, direction=direction, host=host, **extra)


def failed_probe(rng: np.random.Generator, state: str) -> tuple[int, int, float]:
    """Bytes sent, bytes received and duration of a connection that carried no session.

    Benign failures and scan probes both use this, so their sizes are indistinguishable.
    """
    if state == "S0":
        return 0, 0, float(rng.choice([0.0, rng.exponential(2.0)]))
    if state == "SF":  # a banner grab or an immediately closed session
        return int(rng.integers(0, 120)), int(rng.integers(0, 400)), float(rng.exponential(0.3))
    return 0, 0, float(rng.exponential(0.002))


def probe_state(rng: np.random.Generator) -> str:
    """Zeek state of a connection attempt to a port that is closed or filtered."""
    return str(rng.choice(["S0", "REJ", "RSTO", "RSTR", "SH", "OTH"],
                          p=[.5, .36, .05, .04, .025, .025]))


def ephemeral(rng: np.random.Generator, n: int) -> list[int]:
    """Client source ports from the Windows/Linux ephemeral ranges."""
    return rng.integers(32768, 65536, size=n).tolist()


def severity(rng: np.random.Generator, suspicious: bool) -> float:
    """Host-event severity in [0, 1]; odd-but-benign and malicious share one distribution."""
    return round(float(rng.beta(3.5, 5.0) if suspicious else rng.beta(1.6, 7.0)), 3)


def auth(rng: np.random.Generator, t: int, user: str, target: Host, src_ip: str, service: str,
         outcome: str) -> dict:
    """A logon record written by the target host."""
    process = "sshd" if service == "ssh" else "lsass.exe"
    return new_event(t, "authentication", source_ip=src_ip, dest_ip=target.ip, service=service,
                     user=user, host=target.name, process=process, outcome=outcome,
                     severity=severity(rng, outcome == "failure"))


def proc(rng: np.random.Generator, t: int, host: Host, user: str, parent: str, process: str,
         cmd: str, suspicious: bool) -> dict:
    """A process-creation record written by `host`."""
    return new_event(t, "process_creation", host=host.name, user=user, parent_process=parent,
                     process=process, command_line=cmd, severity=severity(rng, suspicious))


def episode_sizes(rng: np.random.Generator, n: int, per_episode: int,
                  at_least: int = 3) -> list[int]:
    """Split `n` events into episodes of about `per_episode`, at least `at_least` (if n allows)."""
    k = min(n, max(at_least, round(n / per_episode)))
    return (1 + rng.multinomial(n - k, np.full(k, 1 / k))).tolist() if k else []


# ---- Activity shared by background and attacks -----------------------------------------------

PORT_SERVICES = {21: "ftp", 22: "ssh", 53: "dns", 80: "http", 135: "dce_rpc", 139: "smb",
                 443: "ssl", 445: "smb", 3389: "rdp", 5985: "http", 8080: "http", 8443: "ssl"}
_OPEN = {"windows": (135, 139, 445, 3389, 5985), "linux": (22, 80, 443, 5432)}
SHARED_ADMIN_CMDS = ("cmd.exe /c whoami", "cmd.exe /c ipconfig /all",
                     "cmd.exe /c net localgroup administrators")


def dns(rng: np.random.Generator, t: int, host: Host, server: Host, domain: str) -> dict:
    """A DNS lookup from `host`; sizes follow the query name's length."""
    bs = 28 + len(domain) + int(rng.integers(0, 6))
    answered = rng.random() > 0.02
    return conn(t, host.ip, int(rng.integers(49152, 65536)), server.ip, 53, "udp", "dns", bs,
                bs + int(rng.integers(16, 140)) if answered else 0, float(rng.exponential(0.03)),
                "SF" if answered else "S0", "internal", host.name, event_type="dns_query",
                domain=domain)


def ssh_short(rng: np.random.Generator) -> tuple[int, int, float]:
    """Bytes each way and duration of a short SSH session: a login attempt or an automated check."""
    bs, br = rng.lognormal([np.log(2600), np.log(3400)], 0.35).astype(int).tolist()
    return bs, br, float(rng.lognormal(np.log(1.5), 0.6))


def psexec(rng: np.random.Generator, t: int, src: Host, target: Host, user: str,
           commands: Sequence[str]) -> list[dict]:
    """Remote service execution over SMB (PsExec style): what IT admins and attackers both do."""
    ev = [conn(t, src.ip, ephemeral(rng, 1)[0], target.ip, 445, "tcp", "smb",
               int(rng.lognormal(np.log(4e5), 0.5)), int(rng.lognormal(np.log(2e4), 0.6)),
               float(rng.lognormal(np.log(2.0), 0.6)), "SF", "internal", src.name),
          auth(rng, t + 40_000, user, target, src.ip, str(rng.choice(["ntlm", "kerberos"])),
               "success"),
          conn(t + 90_000, src.ip, ephemeral(rng, 1)[0], target.ip, 135, "tcp", "dce_rpc",
               int(rng.integers(900, 2500)), int(rng.integers(600, 1800)),
               float(rng.exponential(0.2)), "SF", "internal", src.name),
          new_event(t + 300_000, "file_access", host=target.name, user="SYSTEM",
                    process="System", file_path=r"C:\Windows\PSEXESVC.exe",
                    severity=severity(rng, True)),
          proc(rng, t + 600_000, target, "SYSTEM", "services.exe", "PSEXESVC.exe",
               r"C:\Windows\PSEXESVC.exe", True)]
    for i, cmd in enumerate(rng.choice(commands, size=int(rng.integers(1, 4))).tolist()):
        ev.append(proc(rng, t + (2 + 3 * i) * US, target, user, "PSEXESVC.exe", "cmd.exe", cmd,
                       True))
    return ev


def ping(rng: np.random.Generator, t: int, src: Host, target: Host) -> dict:
    """An ICMP echo (Zeek puts type and code in the port fields); some hosts do not answer."""
    answered = rng.random() < 0.8
    return conn(t, src.ip, 8, target.ip, 0, "icmp", None, 64, 64 if answered else 0,
                float(rng.exponential(0.002)) if answered else 0.0, "OTH", "internal", src.name)


def probe(rng: np.random.Generator, t: int, scanner: Host, target: Host, vertical: bool) -> dict:
    """One scanner probe: many ports of one host (`vertical`) or a few ports across hosts."""
    if not vertical and rng.random() < 0.3:  # host discovery: an echo request
        return ping(rng, t, scanner, target)
    if not vertical:
        port = int(rng.choice([445, 3389, 22, 135, 5985]))
    elif rng.random() < 0.55:
        port = int(rng.choice(COMMON_PORTS))
    else:
        port = int(rng.integers(1, 65536))
    udp = rng.random() < 0.08
    state = "SF" if port in _OPEN[target.os] and not udp else ("S0" if udp else probe_state(rng))
    bs, br, dur = failed_probe(rng, state)
    service = PORT_SERVICES.get(port) if state == "SF" and rng.random() < 0.5 else None
    return conn(t, scanner.ip, ephemeral(rng, 1)[0], target.ip, port, "udp" if udp else "tcp",
                service, bs, br, dur, state, "internal", scanner.name)
