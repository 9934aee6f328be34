"""Building blocks of the synthetic demo data (see `training.demo_data` for the overview): the
simulated network (`build_network`), the office-hours `Clock`, event records, activity that
background and attacks share, and the labeled attack scenarios.

Every scenario is registered in `SCENARIOS` with its ATT&CK technique and its share of all
events. Its generator returns exactly the requested number of events, split into several
episodes placed independently over the window, from hosts that also produce background.
Numbers that benign traffic also produces (failed-connection sizes, SSH session sizes, admin
tools) come from the same helpers, so no single field gives an attack away.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from training.errors import ConfigError

FIELDS: tuple[str, ...] = (
    "event_id", "timestamp", "event_type", "source_ip", "source_port", "dest_ip", "dest_port",
    "protocol", "service", "bytes_sent", "bytes_received", "packets_sent", "packets_received",
    "duration", "conn_state", "direction", "user", "host", "process", "parent_process",
    "command_line", "file_path", "domain", "severity", "outcome",
    "label", "attack_type", "mitre_technique",
)
US = 1_000_000  # microseconds per second: event times are integer offsets in microseconds

# Relative activity per hour of a weekday: quiet nights, a morning ramp, a lunch dip.
_HOURLY = np.array([.12, .1, .1, .1, .12, .18, .3, .6, .9, 1., 1., .95,
                    .8, .95, 1., 1., .9, .7, .5, .4, .3, .25, .2, .15])
_WEEKEND = 0.3
COMMON_PORTS = (21, 22, 23, 25, 53, 80, 110, 135, 139, 143, 443, 445, 993, 1433, 3306, 3389,
                5432, 5900, 5985, 8080, 8443, 9100)


@dataclass(frozen=True)
class Host:
    """One internal machine: stable name, address, main user and operating system."""

    name: str
    ip: str
    user: str
    os: str  # "windows" or "linux"


@dataclass
class Network:
    """The simulated enterprise: hosts, users, internet destinations and attacker footholds."""

    workstations: list[Host]
    weights: np.ndarray  # (n_workstations,) activity share of each workstation, sums to 1
    servers: dict[str, Host]  # role -> host: dc, dns, fs, proxy, web, jump, app, db, scan
    admins: list[str]  # privileged accounts, used by IT and stolen by the attacker
    compromised: list[Host]  # workstations the attacker controls; they keep working normally
    domains: list[str]
    domain_p: np.ndarray  # (n_domains,) popularity, sums to 1
    domain_ips: dict[str, list[str]]
    c2: dict[str, str]  # C2 domain -> IP
    drop_ips: list[str]  # attacker-rented servers receiving exfiltrated data

    def pick_ws(self, rng: np.random.Generator, n: int) -> list[Host]:
        """Draw `n` workstations, busier ones more often."""
        idx = rng.choice(len(self.workstations), size=n, p=self.weights)
        return [self.workstations[i] for i in idx.tolist()]

    def footholds(self, rng: np.random.Generator, k: int, use_server: bool = True) -> list[Host]:
        """Hosts `k` episodes are run from: distinct compromised desktops (each episode another
        intrusion's foothold where possible), and maybe once the exploited app server."""
        order = rng.permutation(len(self.compromised)).tolist()
        hosts = [self.compromised[order[i % len(order)]] for i in range(k)]
        if use_server and k > 1 and rng.random() < 0.6:
            hosts[rng.integers(k)] = self.servers["app"]
        return hosts

    def linux_servers(self) -> list[Host]:
        """Linux servers an attacker can log in to (the scanner appliance excluded)."""
        scanner = self.servers["scan"]
        return [h for h in self.servers.values() if h.os == "linux" and h is not scanner]

    def pick_domains(self, rng: np.random.Generator, n: int) -> list[str]:
        """Draw `n` internet domains with a heavy-tailed popularity."""
        idx = rng.choice(len(self.domains), size=n, p=self.domain_p)
        return [self.domains[i] for i in idx.tolist()]


class Clock:
    """Event times over the window, following office hours and weekdays.

    Args:
        start_hour: Hour of day of the window's start.
        start_weekday: Weekday of the window's start (Monday = 0).
        days: Length of the window in days.
    """

    def __init__(self, start_hour: int, start_weekday: int, days: int) -> None:
        hours = start_hour + np.arange(days * 24)
        weight = _HOURLY[hours % 24] * np.where((start_weekday + hours // 24) % 7 >= 5, _WEEKEND, 1)
        self.p = weight / weight.sum()
        self.span = days * 24 * 3600 * US

    def sample(self, rng: np.random.Generator, n: int, flat: bool = False) -> list[int]:
        """Return `n` times (microsecond offsets); `flat` ignores office hours (machines)."""
        if flat:
            return rng.integers(0, self.span, size=n).tolist()
        hour = rng.choice(len(self.p), size=n, p=self.p)
        return (hour * 3600 * US + rng.integers(0, 3600 * US, size=n)).tolist()

    def place(self, rng: np.random.Generator, offsets: Sequence[float]) -> list[int]:
        """Anchor one episode (offsets in seconds from its start) at an office-hours time."""
        rel = np.asarray(offsets, dtype=float) * US
        length = float(rel.max(initial=0.0))
        if length >= self.span:  # a window shorter than the episode: squeeze the episode in
            rel *= (self.span - 1) / length
            length = self.span - 1
        t0 = min(self.sample(rng, 1)[0], int(self.span - 1 - length))
        return (t0 + rel.astype(np.int64)).tolist()


# ---- The network ---------------------------------------------------------------------------

_FIRST = ("james", "mary", "robert", "linda", "michael", "sarah", "david", "karen", "daniel",
          "nancy", "paul", "lisa", "mark", "betty", "steven", "emily", "kevin", "laura", "brian",
          "anna", "jason", "julia", "eric", "maria", "adam", "olga", "ravi", "mei", "omar", "ines")
_LAST = ("smith", "johnson", "brown", "garcia", "miller", "davis", "lopez", "wilson", "moore",
         "taylor", "martin", "lee", "walker", "hall", "young", "king", "wright", "scott", "green",
         "baker", "adams", "nelson", "carter", "mitchell", "perez", "roberts", "turner", "patel")
_POPULAR = ("microsoft.com", "office365.com", "google.com", "googleapis.com", "gstatic.com",
            "windowsupdate.com", "github.com", "slack.com", "zoom.us", "amazonaws.com",
            "akamaihd.net", "cloudflare.com", "linkedin.com", "youtube.com", "salesforce.com",
            "dropbox.com", "apple.com", "adobe.com", "wikipedia.org", "okta.com", "atlassian.net",
            "sharepoint.com", "teams.microsoft.com", "live.com", "yahoo.com", "stackoverflow.com",
            "pypi.org", "docker.io", "npmjs.org", "ubuntu.com")
_SYLLABLES = ("na", "ro", "ke", "li", "tor", "vex", "cal", "mon", "dia", "pro", "net", "sys",
              "lab", "hub", "ox", "zen", "kit", "ara", "ben", "co")
_PUBLIC_OCTETS = (13, 20, 23, 34, 35, 40, 52, 54, 64, 76, 104, 142, 151, 157, 162, 185, 199, 203)
_HOSTING_OCTETS = (45, 185, 91)  # cheap VPS ranges the attacker rents
# (role, name, address, main user, os)
_SERVERS = (
    ("dc", "DC01", "10.0.0.10", "SYSTEM", "windows"),
    ("dns", "DNS01", "10.0.0.53", "SYSTEM", "windows"),
    ("fs", "FS01", "10.0.0.20", "SYSTEM", "windows"),
    ("proxy", "PROXY01", "10.0.0.30", "squid", "linux"),
    ("web", "WEB01", "10.0.1.80", "www-data", "linux"),
    ("jump", "JUMP01", "10.0.0.40", "", "windows"),  # its user is the first admin
    ("app", "LNX-APP01", "10.0.2.11", "deploy", "linux"),
    ("db", "LNX-DB01", "10.0.2.12", "postgres", "linux"),
    ("scan", "SCAN01", "10.0.0.99", "svc_scanner", "linux"),
)


def public_ips(rng: np.random.Generator, n: int,
               first: tuple[int, ...] = _PUBLIC_OCTETS) -> list[str]:
    """`n` random internet addresses whose first octet is one of `first`."""
    octets = rng.integers(1, 255, size=(n, 3)).tolist()
    return [f"{rng.choice(first)}.{a}.{b}.{c}" for a, b, c in octets]


def build_network(rng: np.random.Generator) -> Network:
    """Draw the simulated enterprise: hosts, users, internet domains and attacker footholds."""
    n_ws = int(rng.integers(40, 81))
    users: list[str] = []
    while len(users) < n_ws:
        name = f"{rng.choice(_FIRST)[0]}{rng.choice(_LAST)}"
        users += [name] if name not in users else []
    slots = rng.permutation(4 * 240)[:n_ws]  # unique addresses in four /24s
    workstations = []
    for i, (user, slot) in enumerate(zip(users, slots.tolist())):
        branch, linux = rng.random() < 0.15, rng.random() < 0.08
        net, octet = 10 + slot // 240 if branch else 1 + slot // 240, 10 + slot % 240
        ip = f"192.168.{net}.{octet}" if branch else f"10.10.{net}.{octet}"
        name = f"{'BR' if branch else 'HQ'}-{'LX' if linux else 'WS'}{i + 1:03d}"
        workstations.append(Host(name, ip, user, "linux" if linux else "windows"))
    weights = rng.lognormal(0.0, 0.7, n_ws)  # a few heavy users, many light ones
    admins = [f"adm-{u}" for u in users[:3]]
    servers = {role: Host(name, ip, user or admins[0], os)
               for role, name, ip, user, os in _SERVERS}
    p = weights * np.array([h.os == "windows" for h in workstations])
    # a week of several intrusions touches about a quarter of the desktops; busy users click
    # more links, so footholds are drawn in proportion to activity
    compromised = rng.choice(n_ws, size=n_ws // 4, replace=False, p=p / p.sum()).tolist()
    long_tail = [f"{rng.choice(_SYLLABLES)}{rng.choice(_SYLLABLES)}{rng.choice(_SYLLABLES)}."
                 f"{rng.choice(['com', 'net', 'io', 'org'])}" for _ in range(150)]
    domains = list(dict.fromkeys(_POPULAR + tuple(long_tail)))
    pool = public_ips(rng, 260)  # shared hosting: several domains resolve to one address
    domain_ips = {d: rng.choice(pool, size=int(rng.integers(1, 4))).tolist() for d in domains}
    popularity = 1 / np.arange(1, len(domains) + 1)  # Zipf
    # one C2 domain hides behind a CDN address that benign sites share (domain fronting)
    c2 = {"cdn-edge-telemetry.com": domain_ips["akamaihd.net"][0],
          "status-sync-api.net": public_ips(rng, 1, _HOSTING_OCTETS)[0]}
    return Network(workstations, weights / weights.sum(), servers, admins,
                   [workstations[i] for i in compromised], domains,
                   popularity / popularity.sum(), domain_ips, c2,
                   public_ips(rng, 2, _HOSTING_OCTETS))


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

_SERVICE = {21: "ftp", 22: "ssh", 53: "dns", 80: "http", 135: "dce_rpc", 139: "smb", 443: "ssl",
            445: "smb", 3389: "rdp", 5985: "http", 8080: "http", 8443: "ssl"}
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
    service = _SERVICE.get(port) if state == "SF" and rng.random() < 0.5 else None
    return conn(t, scanner.ip, ephemeral(rng, 1)[0], target.ip, port, "udp" if udp else "tcp",
                service, bs, br, dur, state, "internal", scanner.name)


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
            events.append(conn(t, src.ip, sport, dst, port, "tcp", _SERVICE[port], bs,
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
