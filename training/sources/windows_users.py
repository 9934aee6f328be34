"""The `user` of a Windows event: the account that acts, by what each event id documents.

    security 4624, 4625, 4634, ... (logons): TargetUserName, the account logged on
    security 4688 (process created): TargetUserName, the new process's account, when set;
        else SubjectUserName, its creator (Windows writes "-" for a target like the creator)
    other security events: SubjectUserName, the account that did it
    sysmon: User
    system 7045 (service installed): AccountName, the account the service runs as

A placeholder ("-", "", "N/A") is no account: it never wins over another field. An nxlog
`AccountName` is the account the event was logged under (for Sysmon, SYSTEM): it is nobody's
action and is not taken, except for 7045 where the export puts the service account there.

One spelling per account: the account name alone, without its domain or realm
(`WORKSTATION5\\wardog`, `wardog@THESHIRE.LOCAL` -> `wardog`), and SYSTEM for the local
system account (`NT AUTHORITY\\SYSTEM`, `LocalSystem`). Windows exports spell the domain in
several ways (NetBIOS, DNS name, none), so keeping it would split one account into several.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from training.sources.coerce import map_distinct, plain, to_string

PLACEHOLDERS = ("-", "", "N/A")
USER_FIELDS = ("User", "TargetUserName", "SubjectUserName")  # WINDOWS_FIELD_MAP["user"]
_LOGON_IDS = ("4624", "4625", "4627", "4634", "4647", "4688", "4768", "4769", "4770", "4771",
              "4776", "4778", "4779")  # the account is the target (4688: when set)
_TARGET_FIRST = ("TargetUserName", "SubjectUserName", "User")
_SUBJECT_FIRST = ("User", "SubjectUserName", "TargetUserName")
_SERVICE_ACCOUNT = ("AccountName", "ServiceAccount")  # system 7045
_SYSTEM = {"localsystem", "system", "nt authority\\system"}


def without_placeholders(table: pa.Table, names: Sequence[str] = USER_FIELDS) -> pa.Table:
    """`table` with the placeholders of its text fields `names` (by default the user fields)
    made null (a new table). Other columns are left as they are: an object where a value
    belongs is the mapping's to quarantine (`collection.value_shapes`)."""
    for name in names:
        kind = table.schema.field(name).type if name in table.column_names else None
        if kind is not None and (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            text = to_string(table[name]).values
            blank = pc.is_in(pc.utf8_trim_whitespace(text), value_set=pa.array(PLACEHOLDERS))
            table = table.set_column(table.column_names.index(name), name,
                                     pc.if_else(blank, pa.scalar(None, pa.string()), text))
    return table


def actors(table: pa.Table) -> pa.Array:
    """Each record's user, by its event id (see the module docstring); null where none."""
    ids = (plain(table["EventID"]).cast(pa.string()) if "EventID" in table.column_names
           else pa.nulls(table.num_rows, pa.string()))
    logon = pc.is_in(ids, value_set=pa.array(_LOGON_IDS)).fill_null(False)
    user = pc.if_else(logon, _first(table, _TARGET_FIRST), _first(table, _SUBJECT_FIRST))
    service = _first(table, _SERVICE_ACCOUNT)
    installed = pc.and_(pc.equal(ids, "7045").fill_null(False), pc.is_valid(service))
    return map_distinct(pc.if_else(installed, service, user), account_name, pa.string())


def account_name(name: object) -> str | None:
    """One spelling of an account: 'WORKSTATION5\\wardog' -> 'wardog', 'LocalSystem' ->
    'SYSTEM'; None for a placeholder."""
    text = str(name).strip()
    if text.lower() in _SYSTEM:
        return "SYSTEM"
    text = text.rsplit("\\", 1)[-1].split("@", 1)[0].strip()
    return None if text in PLACEHOLDERS else text


def _first(table: pa.Table, candidates: tuple[str, ...]) -> pa.Array:
    present = [to_string(table[c]).values for c in candidates if c in table.column_names]
    present = [pc.if_else(pc.is_in(pc.utf8_trim_whitespace(p), value_set=pa.array(PLACEHOLDERS)),
                          pa.scalar(None, pa.string()), p) for p in present]
    if not present:
        return pa.nulls(table.num_rows, pa.string())
    return present[0] if len(present) == 1 else pc.coalesce(*present)
