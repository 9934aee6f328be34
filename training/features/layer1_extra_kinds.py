"""Which extra fields and values say *when* or *which one* rather than *what*: times,
identifiers and free text, which layer 1's extra block leaves out under `behaviour_only_extras`.

Every value of such a field is new at scoring time, so as a feature it is noise, and it came
back as an alert's top reason (`TimeCreated=2020-10-18 07:50:06.010`, a Windows `Message`, a
Zeek `orig_l2_addr`) although the layout zeroes the hosts' address buckets and the time of day
on purpose. The rules read only the field's name (for a field of any type) and the text of a
value (for text), so one event is judged as a table of them is (per-event and batch paths).

- **time**: a field whose name has one of the words `TIME_WORDS` (TimeCreated, UtcTime,
  CreationUtcTime, compile_ts, xmt_time, lease_time; not Suricata's tcp_flags_ts, flags to
  server), ends in one of `TIME_ENDINGS` (notary.first_seen, not_valid_after) or is in a group
  `TIME_GROUPS` (times.created); text that is a date or a date-time
  (ISO 8601 as in Suricata's flow.start, RFC 2822 as in SMTP's date, M/D/YYYY).
- **identifier**: a field whose name ends in one of `ID_WORDS` (ProcessId, ThreadID, LogonId,
  HandleId, SubjectUserSid, ProviderGuid, dns.id, call_id, tls.serial), unless the word before
  names a kind of event rather than one (`KIND_WORDS`: EventID, signature_id); text shaped as
  an identifier: a MAC address or other colon-separated hex bytes (certificate fingerprints
  and serials, SSH host keys), a GUID, a hex digest or long number (16 or more hex digits with
  a digit: md5, sha1, a session id), an IPv4 or IPv6 address (a host, like the canonical
  addresses whose buckets the layout zeroes).
- **free text**: a field named message or msg; text of two or more lines, one of which has two
  words (a rendered event). A list of one token per line (a Windows privilege or access list)
  is kept.

Kept: the digests that name software, not an instance (`SOFTWARE_FINGERPRINTS`: JA3, JA3S,
HASSH, like a user agent), and every other field (Zeek method, status_code, qtype, rcode,
Windows EventID, LogonType, Task, AccessMask, Keywords). What each rule leaves out of the real
datasets is listed, and pinned, in `training/tests/test_layer1_extra_kinds.py`.
"""

from __future__ import annotations

import functools
import re

from training.kernels.netaddr import is_address

TIME, IDENTIFIER, FREE_TEXT = "time", "identifier", "free text"
TIME_WORDS = frozenset({"time", "ts", "date", "timestamp", "utc", "epoch", "till"})
TIME_ENDINGS = frozenset({("first", "seen"), ("last", "seen"), ("valid", "before"),
                          ("valid", "after")})
TIME_GROUPS = frozenset({"times"})  # a dotted group of times: Zeek smb_files' times.created
NOT_TIME = frozenset({("flags", "ts")})  # Suricata's tcp_flags_ts: flags to server
ID_WORDS = frozenset({"id", "ids", "uid", "uids", "fuid", "fuids", "guid", "guids", "sid",
                      "pid", "ppid", "tid", "rtid", "dcid", "scid", "serial"})
KIND_WORDS = frozenset({"event", "signature", "rule"})
MESSAGE_NAMES = frozenset({"message", "msg"})
SOFTWARE_FINGERPRINTS = frozenset({"ja3", "ja3s", "hassh", "hasshserver"})

# ASCII classes only: what a reader wrote, not Unicode digits or spaces.
_DATE = (r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]+)?)?"
         r"(?: ?(?:Z|[+-][0-9]{2}:?[0-9]{2}))?)?"
         r"|(?:[A-Z][a-z]{2}, )?[0-9]{1,2} [A-Z][a-z]{2} [0-9]{4} [0-9]{2}:[0-9]{2}(?::[0-9]{2})?"
         r"(?: (?:[+-][0-9]{4}|[A-Z]{1,5}))?"
         r"|[0-9]{1,2}/[0-9]{1,2}/[0-9]{4}(?:,? [0-9]{1,2}:[0-9]{2}(?::[0-9]{2})?(?: ?[AP]M)?)?")
_ID = (r"[0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){5,}"  # MAC, fingerprint, serial
       r"|\{?[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}\}?"  # GUID
       r"|(?=[A-Fa-f]*[0-9])[0-9A-Fa-f]{16,}")  # digest, long number
_SHAPES = re.compile(rf"(?P<{TIME}>{_DATE})|(?P<{IDENTIFIER}>{_ID})", re.ASCII)  # group: kind
_ADDRESS = re.compile(r"[0-9.]{7,15}|[0-9A-Fa-f:.%a-z]*:[0-9A-Fa-f:.%a-z]*:[0-9A-Fa-f:.%a-z]*",
                      re.ASCII)
_WORDS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z0-9]+|[A-Z0-9]+")
_TWO_WORDS = re.compile(r"[^\t\n\r\f\v ][\t ]+[^\t\n\r\f\v ]")


def words(name: str) -> list[list[str]]:
    """The lower-case words of each dotted part of a field name, split at `_`, `-` and case
    changes: "CreationUtcTime" -> [["creation", "utc", "time"]], "dns.tx_id" -> [["dns"],
    ["tx", "id"]], "ThreadID" -> [["thread", "id"]]."""
    return [[w.lower() for w in _WORDS.findall(part)] for part in name.split(".")]


@functools.lru_cache(maxsize=4096)  # per field name: the per-event path asks for every event
def name_kind(name: str) -> str | None:
    """`TIME`, `IDENTIFIER` or `FREE_TEXT` when the field's name says so, else None."""
    parts = [p for p in words(name) if p]
    if not parts:
        return None
    last = parts[-1]
    if (any(_names_time(part) for part in parts) or tuple(last[-2:]) in TIME_ENDINGS
            or any(len(part) == 1 and part[0] in TIME_GROUPS for part in parts[:-1])):
        return TIME
    if last[-1] in ID_WORDS and not (len(last) > 1 and last[-2] in KIND_WORDS):
        return IDENTIFIER
    if name.rsplit(".", 1)[-1].lower() in MESSAGE_NAMES:
        return FREE_TEXT
    return None


def _names_time(part: list[str]) -> bool:
    """Whether one dotted part's words hold a time word (not as in `NOT_TIME`)."""
    return any(word in TIME_WORDS and tuple(part[i - 1:i + 1]) not in NOT_TIME
               for i, word in enumerate(part))


@functools.lru_cache(maxsize=4096)
def reads_text_shapes(name: str) -> bool:
    """Whether `text_kind` applies to the field's text (not to a software fingerprint's)."""
    return not any(w in SOFTWARE_FINGERPRINTS for part in words(name) for w in part)


def text_kind(text: str) -> str | None:
    """`TIME`, `IDENTIFIER` or `FREE_TEXT` when the text is shaped as one, else None."""
    shape = _SHAPES.fullmatch(text)
    if shape is not None:
        return shape.lastgroup
    if _ADDRESS.fullmatch(text) and is_address(text):
        return IDENTIFIER
    if "\n" in text:
        lines = [line for line in text.splitlines() if line.strip()]
        if len(lines) > 1 and any(_TWO_WORDS.search(line) for line in lines):
            return FREE_TEXT
    return None
