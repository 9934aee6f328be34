"""Background network traffic of the synthetic demo data (see `training.demo.generator` for the
overview), following office hours and weekdays: DNS, browsing with lognormal sizes, SMB to the
file server, Kerberos/LDAP/RPC to the DC, NTP, intranet and database traffic, admin
SSH/RDP/PsExec, backups and vendor SFTP uploads, visitors and internet noise on the web server,
pings, scheduled vulnerability scans and failed connections. `background` mixes them with the
host activity of `training.demo.host_activity`.
"""

from __future__ import annotations

import numpy as np

from training.demo.host_activity import bg_auth, bg_files, bg_host
from training.demo.network import US, Clock, Network, public_ips
from training.demo.records import (
    COMMON_PORTS, SHARED_ADMIN_CMDS, auth, conn, dns, ephemeral, episode_sizes, failed_probe, ping,
    probe, probe_state, psexec, ssh_short,
)

# ---- Background: what the network does all day ------------------------------------------------

_DC_PORTS = ((88, "tcp", "krb_tcp"), (88, "udp", "krb"), (389, "tcp", "ldap"),
             (389, "udp", "ldap"), (636, "tcp", "ssl"), (135, "tcp", "dce_rpc"),
             (0, "tcp", "dce_rpc"), (3268, "tcp", "ldap"))
_DEAD_PORTS = (9100, 631, 515, 445, 3389, 22, 8080, 5985, 139, 135, 1433, 5900, 23, 21, 80, 443)
_BLOCKED_PORTS = (25, 21, 23, 6667, 1194, 3478, 5060, 110, 143, 993, 8443, 1723, 443, 80)


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


# kind -> (share of background events, generator)
_BACKGROUND = {
    "dns": (0.19, _bg_dns), "web": (0.16, _bg_web), "tls": (0.10, _bg_tls),
    "smb": (0.07, _bg_smb), "dc": (0.07, _bg_dc), "ntp": (0.015, _bg_ntp),
    "failed": (0.05, _bg_failed), "vuln_scan": (0.012, _bg_vuln_scan),
    "admin": (0.03, _bg_admin), "server_out": (0.03, _bg_server_out),
    "inbound": (0.03, _bg_inbound), "intranet": (0.06, _bg_intranet),
    "servers": (0.05, _bg_servers), "auth": (0.09, bg_auth), "process": (0.11, bg_host),
    "file": (0.055, bg_files),
}


def background(rng: np.random.Generator, net: Network, clock: Clock, n: int) -> list[dict]:
    """`n` background events: each kind's count is drawn by its share, then generated."""
    share = np.array([s for s, _ in _BACKGROUND.values()])
    counts = rng.multinomial(n, share / share.sum()).tolist()
    return [e for (_, fn), k in zip(_BACKGROUND.values(), counts) for e in fn(rng, net, clock, k)]
