"""Background activity that hosts log (see `training.demo.generator` for the overview): logons
(some failing), process creations and file accesses, odd but benign ones included.

Mixed with the network traffic of `training.demo.background`, which draws how many of each.
"""

from __future__ import annotations

import numpy as np

from training.demo.network import Clock, Network
from training.demo.records import auth, new_event, proc, severity

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


def bg_auth(rng: np.random.Generator, net: Network, clock: Clock, n: int) -> list[dict]:
    """Logons: domain and file-server tickets, a failing backup job, sudo and cron on Linux."""
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


def bg_host(rng: np.random.Generator, net: Network, clock: Clock, n: int,
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


def bg_files(rng: np.random.Generator, net: Network, clock: Clock, n: int) -> list[dict]:
    """File accesses on desktops and servers (`bg_host` with ``files=True``)."""
    return bg_host(rng, net, clock, n, files=True)
