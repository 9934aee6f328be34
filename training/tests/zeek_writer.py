"""A Zeek sensor stand-in: appends conn.log lines at a steady rate and rotates like Zeek.

    python -m training.tests.zeek_writer FOLDER --events 1500 --rate 500 --rotate-every 600

Zeek writes `conn.log` with its #-header, and at rotation closes it ("#close"), renames it to
`conn.<open time>.log` and opens a new `conn.log` with a fresh header. Each line is flushed when
written. Uids are C00000000, C00000001, ...; `ts` is the wall-clock time the line was written,
so a reader can measure write-to-alert latency from it. Every 5th connection is a large
transfer to an unusual port, so a detector has something to alert on.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

FIELDS = ("ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "service",
          "duration", "orig_bytes", "resp_bytes", "conn_state", "orig_pkts", "resp_pkts")
TYPES = ("time", "string", "addr", "port", "addr", "port", "enum", "string", "interval",
         "count", "count", "string", "count", "count")


def header(opened: float) -> str:
    stamp = time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime(opened)) + f".{int(opened * 1e6) % 10**6:06d}"
    return ("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n"
            f"#path\tconn\n#open\t{stamp}\n#fields\t" + "\t".join(FIELDS) + "\n#types\t"
            + "\t".join(TYPES) + "\n")


def line(n: int, ts: float) -> str:
    """Connection `n`, written at `ts`."""
    odd = n % 5 == 0
    port, size = (31337, 50_000_000 + n) if odd else (443, 800 + n % 400)
    values = (f"{ts:.6f}", f"C{n:08d}", f"10.0.{n % 7}.{n % 250 + 1}", str(40000 + n % 20000),
              f"93.184.{n % 3}.34", str(port), "tcp", "ssl" if not odd else "-",
              f"{0.05 + (n % 9) / 10:.3f}", str(size), str(size // 3), "SF", str(10 + n % 30),
              str(8 + n % 20))
    return "\t".join(values) + "\n"


def write(folder: Path, events: int, rate: float, rotate_every: int) -> None:
    """Write `events` lines at `rate` per second into folder/conn.log, rotating every
    `rotate_every` lines; prints "rotated" after each rotation and "done" at the end."""
    folder.mkdir(parents=True, exist_ok=True)
    live = folder / "conn.log"
    opened = time.time()
    out = open(live, "w")
    out.write(header(opened))
    out.flush()
    started = time.perf_counter()
    for n in range(events):
        due = started + n / rate
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        if n and n % rotate_every == 0:
            out.write(f"#close\t{time.strftime('%Y-%m-%d-%H-%M-%S', time.gmtime())}\n")
            out.close()
            stamp = time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime(opened))
            live.rename(folder / f"conn.{stamp}-{n}.log")
            opened = time.time()
            out = open(live, "w")
            out.write(header(opened))
            print("rotated", n, flush=True)
        out.write(line(n, time.time()))
        out.flush()
    out.close()
    print("done", events, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--rotate-every", type=int, default=400)
    args = parser.parse_args()
    write(args.folder, args.events, args.rate, args.rotate_every)


if __name__ == "__main__":
    main()
