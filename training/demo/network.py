"""The simulated enterprise of the synthetic demo data (see `training.demo.generator` for the
overview): its hosts and users (`build_network`), the internet it talks to, the attacker's
footholds, and the office-hours `Clock` that places events in time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

US = 1_000_000  # microseconds per second: event times are integer offsets in microseconds

# Relative activity per hour of a weekday: quiet nights, a morning ramp, a lunch dip.
_HOURLY = np.array([.12, .1, .1, .1, .12, .18, .3, .6, .9, 1., 1., .95,
                    .8, .95, 1., 1., .9, .7, .5, .4, .3, .25, .2, .15])
_WEEKEND = 0.3


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
