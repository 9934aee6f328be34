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

Events carry the canonical field names (`training.demo_scenarios.FIELDS`), null where a field
does not apply, plus `outcome` ("success"/"failure") on authentications. Labels: `label`
("benign"/"malicious"), `attack_type` and `mitre_technique` (both null for benign events).
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import orjson

from training.demo_scenarios import (
    COMMON_PORTS, SCENARIOS, SHARED_ADMIN_CMDS, US, Clock, Network, auth, build_network, conn,
    dns, ephemeral, episode_sizes, failed_probe, new_event, ping, probe, probe_state, proc,
    psexec, public_ips, severity, ssh_short,
)
from training.errors import ConfigError

GENERATOR = "training.demo_data"
VERSION = "1.0"
DEFAULT_START = datetime(2024, 3, 4, tzinfo=timezone.utc)  # a Monday
MAX_EVENTS = 10_000_000

# ---- Background: what the network does all day ------------------------------------------------

_DC_PORTS = ((88, "tcp", "krb_tcp"), (88, "udp", "krb"), (389, "tcp", "ldap"),
             (389, "udp", "ldap"), (636, "tcp", "ssl"), (135, "tcp", "dce_rpc"),
             (0, "tcp", "dce_rpc"), (3268, "tcp", "ldap"))
_DEAD_PORTS = (9100, 631, 515, 445, 3389, 22, 8080, 5985, 139, 135, 1433, 5900, 23, 21, 80, 443)
_BLOCKED_PORTS = (25, 21, 23, 6667, 1194, 3478, 5060, 110, 143, 993, 8443, 1723, 443, 80)
_OFFICE = r"C:\Program Files\Microsoft Office\root\Office16"
# (parent, process, command line, suspicious, weight): everyday programs and admin oddities
_PROCS = {
    "windows": (
        ("userinit.exe", "explorer.exe", r"C:\Windows\explorer.exe", False, 4),
        ("explorer.exe", "chrome.exe",
         r"C:\Program Files\Google\Chrome\Application\chrome.exe", False, 10),
        ("chrome.exe", "chrome.exe", "chrome.exe --type=renderer --lang=en-US", False, 8),
        ("explorer.exe", "outlook.exe", _OFFICE + r"\OUTLOOK.EXE", False, 6),
        ("explorer.exe", "winword.exe",
         r'WINWORD.EXE /n "C:\Users\{user}\Documents\report.docx"', False, 5),
        ("explorer.exe", "teams.exe",
         r"C:\Users\{user}\AppData\Local\Microsoft\Teams\current\Teams.exe", False, 4),
        ("services.exe", "svchost.exe", "svchost.exe -k netsvcs -p", False, 8),
        ("svchost.exe", "taskhostw.exe", "taskhostw.exe", False, 4),
        ("svchost.exe", "wuauclt.exe", "wuauclt.exe /RunHandlerComServer", False, 2),
        ("explorer.exe", "cmd.exe", "cmd.exe", True, 2),
        ("cmd.exe", "ipconfig.exe", "ipconfig /all", False, 2),
        ("cmd.exe", "net.exe", r"net use Z: \\FS01\share", False, 2),
        ("explorer.exe", "powershell.exe", "powershell.exe", True, 2),
        ("powershell.exe", "whoami.exe", "whoami /all", True, 1),
        ("wscript.exe", "powershell.exe",
         r"powershell.exe -ExecutionPolicy Bypass -File \\FS01\NETLOGON\logon.ps1", True, 2),
        ("powershell.exe", "reg.exe",
         r"reg.exe add HKCU\Software\Microsoft\Office\16.0\Common /v QMEnable /d 0 /f", True, 1),
        ("wmiprvse.exe", "powershell.exe",
         "powershell.exe -NoProfile -NonInteractive -Command Get-HotFix", True, 1),
        ("explorer.exe", "fodhelper.exe", r"C:\Windows\System32\fodhelper.exe", True, 0.5),
        ("explorer.exe", "eventvwr.exe", "eventvwr.exe", True, 0.5),
        ("eventvwr.exe", "mmc.exe",
         r"C:\Windows\system32\mmc.exe C:\Windows\system32\eventvwr.msc", True, 0.5),
    ),
    "linux": (
        ("sshd", "bash", "-bash", False, 4),
        ("cron", "python3", "python3 /opt/app/jobs/cleanup.py", False, 3),
        ("bash", "sudo", "sudo systemctl restart nginx", True, 1),
        ("bash", "sudo", "sudo -l", True, 0.5),
        ("bash", "sudo", "sudo -i", True, 1),
        ("sudo", "bash", "/bin/bash", True, 1),
        ("bash", "find", "find / -name '*.log' -mtime +30", False, 1),
        ("bash", "chmod", "chmod +x deploy.sh", False, 1),
        ("bash", "cp", "cp app.conf /tmp/app.conf.bak", False, 1),
        ("bash", "vi", "vi /etc/nginx/nginx.conf", False, 1),
        ("bash", "cat", "cat /var/log/syslog", False, 1),
        ("systemd", "nginx", "/usr/sbin/nginx -g daemon on;", False, 1),
    ),
}
# (file path, process, suspicious, weight); backups and password changes touch secrets too
_FILES = {
    "windows": (
        (r"C:\Users\{user}\Documents\report.docx", "winword.exe", False, 5),
        (r"\\FS01\share\finance\budget.xlsx", "excel.exe", False, 4),
        (r"C:\Users\{user}\Downloads\invoice.pdf", "chrome.exe", False, 4),
        (r"C:\Windows\Temp\setup.tmp", "svchost.exe", False, 2),
        (r"C:\Windows\System32\config\SAM", "VeeamAgent.exe", True, 0.5),
    ),
    "linux": (
        ("/var/log/nginx/access.log", "nginx", False, 3),
        ("/etc/passwd", "bash", False, 2),
        ("/home/{user}/app/config.yml", "python3", False, 2),
        ("/etc/shadow", "unix_chkpwd", True, 1),
        ("/etc/sudoers", "visudo", True, 0.5),
    ),
}


def _rows(rng: np.random.Generator, table: tuple, n: int) -> list[tuple]:
    """`n` rows of `table`, drawn by the weight in each row's last column."""
    weights = np.array([row[-1] for row in table], dtype=float)
    idx = rng.choice(len(table), size=n, p=weights / weights.sum())
    return [table[i] for i in idx.tolist()]


def _sizes(rng: np.random.Generator, medians: list[float], sigmas: list[float] | float,
           n: int | None = None) -> list:
    """Lognormal draws around `medians`: heavy-tailed sizes and durations."""
    size = None if n is None else (n, len(medians))
    return rng.lognormal(np.log(medians), sigmas, size).tolist()


def _bg_dns(rng: np.random.Generator, net: Network, clock: Clock, n: int) -> list[dict]:
    out = []
    for t, h, d in zip(clock.sample(rng, n), net.pick_ws(rng, n), net.pick_domains(rng, n)):
        if rng.random() < 0.03:  # antivirus reputation lookups put a file hash in the name
            d = "".join(rng.choice(list("0123456789abcdef"), size=40)) + ".avqs.mcafee.com"
        out.append(dns(rng, t, h, net.servers["dns"], d))
    return out


def _bg_web(rng: np.random.Generator, net: Network, clock: Clock, n: int,
            http: bool = True) -> list[dict]:
    out = []
    sizes = _sizes(rng, [900, 15000, 0.8], [1.0, 1.8, 1.2], n)
    ports = rng.choice([443, 80, 8443, 8080], size=n, p=[.82, .14, .02, .02]).tolist()
    states = rng.choice(["SF", "RSTO", "RSTR", "SH", "S0"], size=n,
                        p=[.93, .03, .02, .01, .01]).tolist()
    for t, h, d, sport, (bs, br, dur), port, state in zip(
            clock.sample(rng, n), net.pick_ws(rng, n), net.pick_domains(rng, n),
            ephemeral(rng, n), sizes, ports, states):
        if state == "S0":
            bs, br, dur = failed_probe(rng, state)
        out.append(conn(t, h.ip, sport, str(rng.choice(net.domain_ips[d])), port, "tcp",
                        "ssl" if port in (443, 8443) else "http", int(bs), int(br), dur, state,
                        "outbound", h.name,
                        event_type="http_request" if http else "network_connection",
                        domain=d if http else None))
    return out


def _bg_tls(rng: np.random.Generator, net: Network, clock: Clock, n: int) -> list[dict]:
    out, proxy = _bg_web(rng, net, clock, n, http=False), net.servers["proxy"]
    for event in out[: int(0.4 * n)]:  # explicit-proxy clients: the flow ends at the proxy
        event.update(dest_ip=proxy.ip, dest_port=3128, service="http", direction="internal")
    return out


def _bg_smb(rng: np.random.Generator, net: Network, clock: Clock, n: int) -> list[dict]:
    out, fs, dc = [], net.servers["fs"], net.servers["dc"]
    sizes = _sizes(rng, [3e3, 4e4, 2.0], [1.5, 2.0, 1.5], n)
    for t, h, sport, (bs, br, dur) in zip(clock.sample(rng, n), net.pick_ws(rng, n),
                                          ephemeral(rng, n), sizes):
        dst = fs if rng.random() < 0.85 else dc  # the DC serves SYSVOL and NETLOGON
        out.append(conn(t, h.ip, sport, dst.ip, 445 if rng.random() < 0.95 else 139, "tcp",
                        "smb", int(bs), int(br), dur, "SF", "internal", h.name))
    return out


def _bg_dc(rng: np.random.Generator, net: Network, clock: Clock, n: int) -> list[dict]:
    out, dc = [], net.servers["dc"]
    kinds = rng.choice(len(_DC_PORTS), size=n, p=[.25, .1, .25, .1, .05, .1, .1, .05]).tolist()
    for t, h, sport, k in zip(clock.sample(rng, n), net.pick_ws(rng, n), ephemeral(rng, n),
                              kinds):
        port, proto, service = _DC_PORTS[k]
        port = port or int(rng.integers(49152, 65536))  # the RPC endpoint mapper hands one out
        bs, br = rng.lognormal([np.log(1500), np.log(2500)], [0.8, 1.0]).astype(int).tolist()
        out.append(conn(t, h.ip, sport, dc.ip, port, proto, service, bs, br,
                        float(rng.exponential(0.05)), "SF", "internal", h.name))
    return out


def _bg_ntp(rng: np.random.Generator, net: Network, clock: Clock, n: int) -> list[dict]:
    dc = net.servers["dc"]
    return [conn(t, h.ip, 123, dc.ip, 123, "udp", "ntp", 48, 48, float(rng.exponential(0.01)),
                 "SF", "internal", h.name)
            for t, h in zip(clock.sample(rng, n, flat=True), net.pick_ws(rng, n))]


def _bg_failed(rng: np.random.Generator, net: Network, clock: Clock, n: int) -> list[dict]:
    """Connections that go nowhere: stale shares, dead printers, blocked egress, broadcasts."""
    out, internal = [], list(net.servers.values()) + net.workstations
    for t, h, sport, d in zip(clock.sample(rng, n), net.pick_ws(rng, n), ephemeral(rng, n),
                              net.pick_domains(rng, n)):
        r, proto, direction = rng.random(), "tcp", "internal"
        if r < 0.45:
            dst = internal[rng.integers(len(internal))].ip
            port = int(rng.choice(_DEAD_PORTS) if rng.random() < 0.7 else rng.integers(1024, 65536))
        elif r < 0.8:
            dst, direction = str(rng.choice(net.domain_ips[d])), "outbound"
            port = int(rng.choice(_BLOCKED_PORTS) if rng.random() < 0.8 else rng.integers(1, 65536))
        else:
            dst, proto = internal[rng.integers(len(internal))].ip, "udp"
            port = int(rng.choice([137, 138, 1900, 5353, 161, 514]))
        state = "S0" if proto == "udp" else probe_state(rng)
        bs, br, dur = failed_probe(rng, state)
        out.append(conn(t, h.ip, sport, dst, port, proto, None, bs, br, dur, state, direction,
                        h.name))
    return out


def _bg_vuln_scan(rng: np.random.Generator, net: Network, clock: Clock, n: int) -> list[dict]:
    """The security team's scheduled scanner: scan-shaped, and benign."""
    out, targets = [], list(net.servers.values()) + net.workstations
    for size in episode_sizes(rng, n, per_episode=60, at_least=2):
        vertical, target = rng.random() < 0.5, targets[rng.integers(len(targets))]
        for t in clock.place(rng, np.cumsum(rng.exponential(0.5, size))):
            target = target if vertical else targets[rng.integers(len(targets))]
            out.append(probe(rng, t, net.servers["scan"], target, vertical))
    return out


def _bg_admin(rng: np.random.Generator, net: Network, clock: Clock, n: int) -> list[dict]:
    """IT at work: automation over SSH, interactive SSH and RDP, PsExec to servers and desktops."""
    out: list[dict] = []
    linux = net.linux_servers()
    windows = [h for h in net.servers.values() if h.os == "windows"]
    sources = [net.servers["jump"]] + [h for h in net.workstations if f"adm-{h.user}" in net.admins]
    commands = SHARED_ADMIN_CMDS + ("cmd.exe /c gpupdate /force", "cmd.exe /c wmic qfe list brief",
                                    "cmd.exe /c sc query wuauserv")
    while len(out) < n:
        t, sport = clock.sample(rng, 1)[0], ephemeral(rng, 1)[0]
        src, admin = sources[rng.integers(len(sources))], str(rng.choice(net.admins))
        r = rng.random()
        if r < 0.55:  # config management checks, or an admin's interactive session
            dst = linux[rng.integers(len(linux))]
            if r < 0.35:
                bs, br, dur = ssh_short(rng)
                user = str(rng.choice(["svc_ansible", "deploy", "root", "postgres"]))
            else:
                bs, br, dur = _sizes(rng, [3e4, 2e5, 600], [1.2, 1.5, 1.2])
                user = str(rng.choice([admin, "root"]))
            outcome = "failure" if rng.random() < 0.12 else "success"  # stale keys, typos
            out += [conn(t, src.ip, sport, dst.ip, 22, "tcp", "ssh", int(bs), int(br), dur, "SF",
                         "internal", src.name),
                    auth(rng, t + int(dur * US * 0.05), user, dst, src.ip, "ssh", outcome)]
        elif r < 0.7:
            dst = windows[rng.integers(len(windows))]
            bs, br, dur = _sizes(rng, [2e5, 3e6, 1200], [1.0, 1.2, 1.0])
            out += [conn(t, src.ip, sport, dst.ip, 3389, "tcp", "rdp", int(bs), int(br), dur, "SF",
                         "internal", src.name),
                    auth(rng, t + US, admin, dst, src.ip, "kerberos", "success")]
        else:
            targets = windows + net.workstations
            out += psexec(rng, t, src, targets[rng.integers(len(targets))], admin, commands)
    return out[:n]


# kind -> (domain, port, service, median bytes [sent, received], sigmas), by cumulative share
_BULK = {
    "backup": ("amazonaws.com", 443, "ssl", [2e7, 8e3], [1.2, 0.8]),  # to cloud storage
    "update": ("windowsupdate.com", 443, "ssl", [2e3, 5e7], [0.8, 1.5]),
    "partner_sftp": (None, 22, "ssh", [3e6, 6e3], [1.5, 0.8]),
    "saas": ("salesforce.com", 8443, "ssl", [5e5, 2e4], [1.5, 1.0]),  # TLS on a non-standard port
    "mirror_ftp": ("ubuntu.com", 21, "ftp", [2e3, 2e7], [1.0, 1.5]),
}
_BULK_KINDS = tuple(_BULK)
_BULK_CUTS = (0.35, 0.6, 0.8, 0.9)


def _bg_server_out(rng: np.random.Generator, net: Network, clock: Clock, n: int) -> list[dict]:
    """Bulk transfers that look like exfiltration: backups, updates, vendor SFTP, SaaS uploads."""
    out, ws = [], net.pick_ws(rng, n)
    servers = [net.servers[r] for r in ("fs", "dc", "jump")]
    for i, (t, sport) in enumerate(zip(clock.sample(rng, n), ephemeral(rng, n))):
        r = rng.random()
        src = servers[rng.integers(3)] if r < 0.35 or (0.6 <= r < 0.7) else ws[i]
        kind = _BULK_KINDS[int(np.searchsorted(_BULK_CUTS, r, side="right"))]
        domain, port, service, medians, sigmas = _BULK[kind]
        bs, br = _sizes(rng, medians, sigmas)
        dur = (bs + br) / float(rng.lognormal(np.log(2e6), 0.7))
        dst = str(rng.choice(net.domain_ips[domain or net.domains[-1]]))  # last: the partner
        out.append(conn(t, src.ip, sport, dst, port, "tcp", service, int(bs), int(br), dur, "SF",
                        "outbound", src.name))
    return out


def _bg_intranet(rng: np.random.Generator, net: Network, clock: Clock, n: int) -> list[dict]:
    """The line-of-business app: desktops use it over HTTPS, it and BI tools query the DB."""
    out, app, db = [], net.servers["app"], net.servers["db"]
    for t, h, sport in zip(clock.sample(rng, n), net.pick_ws(rng, n), ephemeral(rng, n)):
        r = rng.random()
        bs, br, dur = _sizes(rng, [1200, 3e4, 0.4], [0.9, 1.4, 1.0])
        if r < 0.45:
            port = 443 if rng.random() < 0.8 else 8080
            out.append(conn(t, h.ip, sport, app.ip, port, "tcp", "ssl" if port == 443 else "http",
                            int(bs), int(br), dur, "SF", "internal", h.name,
                            event_type="http_request", domain="intranet.example-corp.com"))
        else:
            src = app if r < 0.9 else h
            out.append(conn(t, src.ip, sport, db.ip, 5432, "tcp", "postgresql", int(bs), int(br),
                            dur, "SF", "internal", src.name))
    return out


def _bg_servers(rng: np.random.Generator, net: Network, clock: Clock, n: int) -> list[dict]:
    """Servers' own chatter: lookups, tickets, the proxy's upstream fetches, health checks."""
    out, servers = [], list(net.servers.values())
    dc, proxy = net.servers["dc"], net.servers["proxy"]
    for t, sport, d in zip(clock.sample(rng, n, flat=True), ephemeral(rng, n),
                           net.pick_domains(rng, n)):
        src, r = servers[rng.integers(len(servers))], rng.random()
        if r < 0.3:
            out.append(dns(rng, t, src, net.servers["dns"], d))
        elif r < 0.5:
            bs, br = rng.lognormal([np.log(1500), np.log(2500)], [0.8, 1.0]).astype(int).tolist()
            out.append(conn(t, src.ip, sport, dc.ip, 88, "tcp", "krb_tcp", bs, br,
                            float(rng.exponential(0.05)), "SF", "internal", src.name))
        elif r < 0.75:
            bs, br, dur = _sizes(rng, [900, 2e4, 0.8], [1.0, 1.8, 1.2])
            out.append(conn(t, proxy.ip, sport, str(rng.choice(net.domain_ips[d])), 443, "tcp",
                            "ssl", int(bs), int(br), dur, "SF", "outbound", proxy.name))
        else:  # the monitoring system pings every machine
            targets = servers + net.workstations
            out.append(ping(rng, t, net.servers["scan"], targets[rng.integers(len(targets))]))
    return out


def _bg_inbound(rng: np.random.Generator, net: Network, clock: Clock, n: int) -> list[dict]:
    """Visitors of the public web server, and the internet's constant background of probes."""
    out, web, clients = [], net.servers["web"], public_ips(rng, 300)
    for t, sport in zip(clock.sample(rng, n), ephemeral(rng, n)):
        src = clients[rng.integers(len(clients))]
        if rng.random() < 0.8:
            port = 443 if rng.random() < 0.85 else 80
            bs, br, dur = _sizes(rng, [700, 2e4, 0.5], [0.8, 1.5, 1.0])
            out.append(conn(t, src, sport, web.ip, port, "tcp", "ssl" if port == 443 else "http",
                            int(bs), int(br), dur, "SF", "inbound", web.name,
                            event_type="http_request", domain="www.example-corp.com"))
        else:
            port = int(rng.choice(COMMON_PORTS) if rng.random() < 0.6 else rng.integers(1, 65536))
            state = probe_state(rng)
            bs, br, dur = failed_probe(rng, state)
            out.append(conn(t, src, sport, web.ip, port, "tcp", None, bs, br, dur, state,
                            "inbound", web.name))
    return out


def _bg_auth(rng: np.random.Generator, net: Network, clock: Clock, n: int) -> list[dict]:
    out, dc, fs = [], net.servers["dc"], net.servers["fs"]
    linux = [h for h in net.servers.values() if h.os == "linux"]
    for t, h in zip(clock.sample(rng, n), net.pick_ws(rng, n)):
        r = rng.random()
        if r < 0.75:  # domain logons and ticket requests; typos and expired passwords fail
            service = "kerberos" if rng.random() < 0.8 else "ntlm"
            outcome = "failure" if rng.random() < 0.06 else "success"
            out.append(auth(rng, t, h.user, dc, h.ip, service, outcome))
        elif r < 0.92:
            outcome = "failure" if rng.random() < 0.03 else "success"
            out.append(auth(rng, t, h.user, fs, h.ip, "kerberos", outcome))
        elif r < 0.97:  # a backup job with a stale password keeps failing
            outcome = "failure" if rng.random() < 0.7 else "success"
            out.append(auth(rng, t, "svc_backup", dc, fs.ip, "ntlm", outcome))
        else:  # sudo and cron sessions on the Linux servers
            target = linux[rng.integers(len(linux))]
            user = str(rng.choice([target.user, "root"] + net.admins))
            service = str(rng.choice(["sudo", "cron"]))
            outcome = "failure" if rng.random() < 0.05 else "success"
            out.append(auth(rng, t, user, target, target.ip, service, outcome))
    return out


def _bg_host(rng: np.random.Generator, net: Network, clock: Clock, n: int,
             files: bool = False) -> list[dict]:
    """Process creations (or file accesses) on desktops and servers."""
    out, servers = [], list(net.servers.values())
    hosts = [servers[rng.integers(len(servers))] if rng.random() < 0.2 else h
             for h in net.pick_ws(rng, n)]
    tables = _FILES if files else _PROCS
    rows = {os_name: _rows(rng, table, n) for os_name, table in tables.items()}
    for i, (t, host) in enumerate(zip(clock.sample(rng, n), hosts)):
        if files:
            path, process, suspicious, _ = rows[host.os][i]
            user = ("root" if host.os == "linux" else "SYSTEM") if suspicious else host.user
            out.append(new_event(t, "file_access", host=host.name, user=user, process=process,
                                 file_path=path.format(user=host.user),
                                 severity=severity(rng, suspicious)))
            continue
        parent, process, cmd, suspicious, _ = rows[host.os][i]
        user = host.user
        if parent in ("services.exe", "svchost.exe", "wmiprvse.exe"):
            user = "SYSTEM"
        elif parent in ("sudo", "cron", "systemd"):
            user = "root"
        out.append(proc(rng, t, host, user, parent, process, cmd.format(user=host.user),
                        suspicious))
    return out


def _bg_files(rng: np.random.Generator, net: Network, clock: Clock, n: int) -> list[dict]:
    return _bg_host(rng, net, clock, n, files=True)


# kind -> (share of background events, generator)
_BACKGROUND = {
    "dns": (0.19, _bg_dns), "web": (0.16, _bg_web), "tls": (0.10, _bg_tls),
    "smb": (0.07, _bg_smb), "dc": (0.07, _bg_dc), "ntp": (0.015, _bg_ntp),
    "failed": (0.05, _bg_failed), "vuln_scan": (0.012, _bg_vuln_scan),
    "admin": (0.03, _bg_admin), "server_out": (0.03, _bg_server_out),
    "inbound": (0.03, _bg_inbound), "intranet": (0.06, _bg_intranet),
    "servers": (0.05, _bg_servers), "auth": (0.09, _bg_auth), "process": (0.11, _bg_host),
    "file": (0.055, _bg_files),
}


def _background(rng: np.random.Generator, net: Network, clock: Clock, n: int) -> list[dict]:
    share = np.array([s for s, _ in _BACKGROUND.values()])
    counts = rng.multinomial(n, share / share.sum()).tolist()
    return [e for (_, fn), k in zip(_BACKGROUND.values(), counts) for e in fn(rng, net, clock, k)]


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
        dicts with the fields of `training.demo_scenarios.FIELDS`, sorted by timestamp]}.

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
    events += _background(np.random.default_rng(bg_seq), net, clock, n_events - n_malicious)
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

    The document goes to a temporary file in the target folder, is fsynced, then renamed over
    `path`: a crash leaves the previous file intact.

    Args:
        path: Output file; missing parent folders are created.
        n_events: Number of events (see `generate_demo_events`).
        seed: Seed of the generator.

    Returns:
        The path written.

    Raises:
        ConfigError: An argument breaks its rule.
    """
    document = generate_demo_events(n_events=n_events, seed=seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(orjson.dumps(document))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
