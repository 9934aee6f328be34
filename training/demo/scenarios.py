"""The labeled attack scenarios of the synthetic demo data (see `training.demo.generator` for the
overview). The network they run in is `training.demo.network`; the event records and the
activity they share with the background are `training.demo.records`.

Every scenario is registered in `SCENARIOS` with its ATT&CK technique and its share of all
events. Its generator returns exactly the requested number of events, split into several
episodes placed independently over the window, from hosts that also produce background.
Numbers that benign traffic also produces (failed-connection sizes, SSH session sizes, admin
tools) come from the same helpers, so no single field gives an attack away.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from training.demo.network import US, Clock, Network
from training.demo.records import (
    FIELDS, PORT_SERVICES, SHARED_ADMIN_CMDS, auth, conn, dns, ephemeral, episode_sizes, new_event,
    probe, proc, psexec, severity, ssh_short,
)
from training.errors import ConfigError

# FIELDS lives in `training.demo.records`; it is re-exported here, where callers import it.
__all__ = ["FIELDS", "SCENARIOS", "Scenario", "register"]


# ---- Attack scenarios -------------------------------------------------------------------------

@dataclass(frozen=True)
class Scenario:
    """One attack scenario: its ATT&CK technique, its share of all events and its generator."""

    name: str
    technique: str
    share: float
    description: str
    generate: Callable[[np.random.Generator, Network, Clock, int], list[dict]]


SCENARIOS: dict[str, Scenario] = {}


def register(name: str, technique: str, share: float, description: str) -> Callable:
    """Decorator adding a generator to `SCENARIOS`; its events get the scenario's labels."""
    if name in SCENARIOS:
        raise ConfigError(f"scenario name must be unique, got {name!r} a second time")

    def wrap(fn: Callable[[np.random.Generator, Network, Clock, int], list[dict]]) -> Callable:
        def generate(rng: np.random.Generator, net: Network, clock: Clock, n: int) -> list[dict]:
            events = fn(rng, net, clock, n)[:n]  # episodes come in bundles: trim the last one
            for event in events:
                event.update(label="malicious", attack_type=name, mitre_technique=technique)
            return events
        SCENARIOS[name] = Scenario(name, technique, share, description, generate)
        return fn
    return wrap


_BRUTE_USERS = ("root", "admin", "deploy", "postgres", "ubuntu", "svc_ansible", "test", "oracle",
                "guest")
_LATERAL_CMDS = SHARED_ADMIN_CMDS + (
    'cmd.exe /c net group "Domain Admins" /domain', "cmd.exe /c tasklist /v",
    r"cmd.exe /c reg save HKLM\SAM C:\Windows\Temp\s.hiv", "cmd.exe /c vssadmin list shadows")
# Privilege-escalation chains: (parent, process, command line) or ("file", path, process).
_PRIVESC_CHAINS = {
    "windows": (
        (("powershell.exe", "reg.exe", r"reg.exe add HKCU\Software\Classes\ms-settings"
          r"\Shell\Open\command /v DelegateExecute /f"),
         ("powershell.exe", "fodhelper.exe", r"C:\Windows\System32\fodhelper.exe"),
         ("fodhelper.exe", "cmd.exe", "cmd.exe"),
         ("cmd.exe", "net.exe", "net localgroup administrators {user} /add")),
        (("cmd.exe", "reg.exe",
          r"reg.exe add HKCU\Software\Classes\mscfile\shell\open\command /d powershell.exe /f"),
         ("cmd.exe", "eventvwr.exe", "eventvwr.exe"),
         ("eventvwr.exe", "powershell.exe", "powershell.exe -nop -w hidden"),
         ("file", r"C:\Windows\System32\config\SAM", "reg.exe")),
    ),
    "linux": (
        (("bash", "sudo", "sudo -l"), ("bash", "sudo", "sudo -u#-1 /bin/bash"),
         ("sudo", "bash", "/bin/bash"), ("file", "/etc/shadow", "cat")),
        (("bash", "find", "find / -perm -4000 -type f"), ("bash", "cp", "cp /bin/bash /tmp/.b"),
         ("bash", "chmod", "chmod u+s /tmp/.b"), ("bash", ".b", "/tmp/.b -p"),
         ("file", "/etc/sudoers", "vi")),
    ),
}


@register("port_scan", "T1046", 0.025, "bursts of probes from one host to many ports or hosts")
def _port_scan(rng: np.random.Generator, net: Network, clock: Clock, n: int) -> list[dict]:
    events: list[dict] = []
    servers = list(net.servers.values())
    targets = servers + net.workstations
    sizes = episode_sizes(rng, n, per_episode=30, at_least=4)
    for size, scanner in zip(sizes, net.footholds(rng, len(sizes))):
        gap = float(rng.choice([0.05, 0.5, 6.0]))  # fast, polite and slow scans
        times = clock.place(rng, np.cumsum(rng.exponential(gap, size)))
        vertical = rng.random() < 0.6  # one host, many ports; else many hosts, few ports
        pool = servers if rng.random() < 0.7 else targets  # servers are what attackers map first
        target = pool[rng.integers(len(pool))]
        for t in times:
            if not vertical:
                target = targets[rng.integers(len(targets))]
            events.append(probe(rng, t, scanner, target, vertical))
    return events


@register("ssh_brute_force", "T1110.001", 0.02, "password guessing over SSH against Linux servers")
def _ssh_brute_force(rng: np.random.Generator, net: Network, clock: Clock, n: int) -> list[dict]:
    events: list[dict] = []
    linux = net.linux_servers()
    users = _BRUTE_USERS + tuple(h.user for h in net.workstations[:8])  # sprayed known names
    sizes = episode_sizes(rng, (n + 1) // 2, per_episode=15, at_least=4)
    for size, attacker in zip(sizes, net.footholds(rng, len(sizes))):
        target = linux[rng.integers(len(linux))]
        while target is attacker:
            target = linux[rng.integers(len(linux))]
        gap = float(rng.choice([1.5, 4.0, 40.0]))  # hammering or low-and-slow
        for t, sport in zip(clock.place(rng, np.cumsum(rng.exponential(gap, size))),
                            ephemeral(rng, size)):
            bs, br, dur = ssh_short(rng)
            events.append(conn(t, attacker.ip, sport, target.ip, 22, "tcp", "ssh", bs, br, dur,
                               "SF", "internal", attacker.name))
            events.append(auth(rng, t + int(dur * US * 0.8), str(rng.choice(users)), target,
                               attacker.ip, "ssh", "failure"))
    return events


@register("c2_beaconing", "T1071.001", 0.018, "jittered periodic HTTP(S) callbacks to a C2 server")
def _c2_beaconing(rng: np.random.Generator, net: Network, clock: Clock, n: int) -> list[dict]:
    events: list[dict] = []
    c2 = list(net.c2.items())
    proxy = net.servers["proxy"]
    sizes = episode_sizes(rng, n, per_episode=30, at_least=3)
    for size, host in zip(sizes, net.footholds(rng, len(sizes))):
        domain, ip = c2[rng.integers(len(c2))]
        period, jitter = float(rng.choice([30, 60, 120, 300])), float(rng.uniform(0.1, 0.3))
        offsets = np.cumsum(period * (1 + rng.uniform(-jitter, jitter, size)))
        port, service = ((443, "ssl"), (80, "http"), (8080, "http"))[rng.integers(3)]
        for t, sport in zip(clock.place(rng, offsets), ephemeral(rng, size)):
            kind = rng.random()
            if kind < 0.1:  # the implant re-resolves its server when the TTL runs out
                events.append(dns(rng, t, host, net.servers["dns"], domain))
                continue
            tasked = rng.random() < 0.05  # most check-ins get "no task"; some fetch a payload
            br = int(rng.lognormal(np.log(2e4), 1.0)) if tasked else int(rng.normal(300, 60))
            # the flow log sees the proxy hop; the proxy log (http_request) sees the server
            via_proxy = kind >= 0.7 and rng.random() < 0.5
            events.append(conn(t, host.ip, sport, proxy.ip if via_proxy else ip,
                               3128 if via_proxy else port, "tcp", "http" if via_proxy else service,
                               int(rng.normal(420, 35)), br, float(rng.gamma(2.0, 0.15)), "SF",
                               "internal" if via_proxy else "outbound", host.name,
                               event_type="http_request" if kind < 0.7 else "network_connection",
                               domain=domain if kind < 0.7 else None))
    return events


@register("data_exfiltration", "T1048", 0.01, "bulk uploads over SFTP, FTP, HTTPS-alt or DNS")
def _data_exfiltration(rng: np.random.Generator, net: Network, clock: Clock, n: int) -> list[dict]:
    events: list[dict] = []
    sizes = episode_sizes(rng, n, per_episode=12, at_least=3)
    for size, foothold in zip(sizes, net.footholds(rng, len(sizes), use_server=False)):
        # data is often staged on the file server and sent from there
        src = net.servers["fs"] if rng.random() < 0.35 else foothold
        method = str(rng.choice(["sftp", "ftp", "https_alt", "dns"]))
        gap = 2.0 if method == "dns" else 60.0
        times = clock.place(rng, np.cumsum(rng.exponential(gap, size)))
        dst = net.drop_ips[rng.integers(len(net.drop_ips))]
        for t, sport in zip(times, ephemeral(rng, size)):
            if method == "dns":  # data encoded in the query names of an attacker-run zone
                label = "".join(rng.choice(list("0123456789abcdef"), size=40))
                events.append(dns(rng, t, src, net.servers["dns"], f"{label}.cdn-metrics-sync.net"))
                continue
            port = {"sftp": 22, "ftp": 21, "https_alt": 8443}[method]
            bs = int(rng.lognormal(np.log(8e6), 1.2))
            events.append(conn(t, src.ip, sport, dst, port, "tcp", PORT_SERVICES[port], bs,
                               int(rng.lognormal(np.log(6e3), 0.8)),
                               bs / float(rng.lognormal(np.log(2e6), 0.7)), "SF", "outbound",
                               src.name))
    return events


@register("lateral_movement", "T1021.002", 0.015, "remote service execution over SMB admin shares")
def _lateral_movement(rng: np.random.Generator, net: Network, clock: Clock, n: int) -> list[dict]:
    events: list[dict] = []
    targets = [h for h in net.servers.values() if h.os == "windows"] + net.workstations
    sizes = episode_sizes(rng, n, per_episode=25, at_least=3)
    for size, foothold in zip(sizes, net.footholds(rng, len(sizes), use_server=False)):
        # stolen admin credentials, used from a foothold or from the admins' own jump host
        src = net.servers["jump"] if rng.random() < 0.4 else foothold
        user = net.admins[rng.integers(len(net.admins))]
        episode: list[dict] = []
        for t in clock.place(rng, np.cumsum(rng.exponential(90.0, size // 6 + 1))):
            target = targets[rng.integers(len(targets))]
            episode += psexec(rng, t, src, target, user, _LATERAL_CMDS)
        while len(episode) < size:  # a short bundle: the operator runs more commands
            episode += psexec(rng, episode[-1]["_t"] + 30 * US, src, target, user, _LATERAL_CMDS)
        events += episode[:size]
    return events


@register("privilege_escalation", "T1548", 0.012, "UAC bypass, sudo and setuid abuse")
def _privilege_escalation(rng: np.random.Generator, net: Network, clock: Clock,
                          n: int) -> list[dict]:
    events: list[dict] = []
    linux_hosts = net.linux_servers()
    sizes = episode_sizes(rng, n, per_episode=8, at_least=4)
    for size, foothold in zip(sizes, net.footholds(rng, len(sizes), use_server=False)):
        on_linux = rng.random() < 0.45
        host = linux_hosts[rng.integers(len(linux_hosts))] if on_linux else foothold
        chains = _PRIVESC_CHAINS["linux" if on_linux else "windows"]
        steps: list[tuple[str, str, str]] = []
        while len(steps) < size:  # a failed technique is followed by another one
            steps += chains[rng.integers(len(chains))]
        elevated = "root" if on_linux else "SYSTEM"
        times = clock.place(rng, np.cumsum(rng.exponential(15.0, size)))
        for i, (t, (a, b, c)) in enumerate(zip(times, steps)):
            user = host.user if i < 2 else elevated
            if a == "file":
                events.append(new_event(t, "file_access", host=host.name, user=user, process=c,
                                        file_path=b, severity=severity(rng, True)))
            else:
                events.append(proc(rng, t, host, user, a, b, c.format(user=host.user), True))
    return events
