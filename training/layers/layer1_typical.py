"""What a layer-1 model expects of an event field, in words: the `typical` of its reasons.

The model's reconstruction of a field's dims is read as an expectation: each dim's level in
(0, 1) is how strongly the model expects that value (a one-hot block's levels add up to about
the chance the field is present), written as a percentage. A reason's `typical` names the most
expected value with its level ("SF (93%)", the next one beside it from `SHOWN`), says when no
value reaches `SINGLE` ("no single value expected (SF 31%, S0 22%)") or when the model expects
the field to be absent ("none expected"), and never calls the observed value typical: where the
model did expect this event's value, it says why the field still costs (a never-seen value, a
rarer one, fields the event lacks).

| field | typical reads |
|---|---|
| one-hot (event type, protocol, service, state, direction, address kind) | the most expected values and their levels; a hashed bucket as "an unlisted protocol", "an uncategorized event type of another hash bucket" |
| identity of `l1.v4` (present, rarity, never seen) | "no value expected (98%)", "a common value seen in training (76%); this one never seen", "...; this one rarer (rarity 0.62 vs 0.10)" |
| pair of `l1.v4` (never seen together) | "a pair seen in training (97%); this pair never was" |
| identity hash buckets (`l1.v3`) | "a value hashed like this one (62%)", "a value of another hash bucket (90%)", "none expected" |
| extra fields (16 shared buckets) | "their hash bucket at 18%; 66% from 3 buckets of fields this event lacks" (of the field's term) |
| ports | the kinds expected and a common service port: "a well-known port below 1024 (91%), a common service port (88%)" (not the number read back: a blend of the training ports) |
| volumes, severity, time | the reconstruction read back (`decode_rows`); a time off the clock "no time of day expected" |
"""

from __future__ import annotations

import numpy as np

from training.features.layer1_names import (
    EXTRA_FIELD, HASHED, NEVER_SEEN, counted, decode_rows, field_names, value_dims,
)

SINGLE = 0.5  # the level from which the model expects one value
SHOWN = 0.1  # a level worth naming beside the most expected value
_UNLISTED = {"event_type": "uncategorized event type", "protocol": "unlisted protocol",
             "service": "unlisted service", "conn_state": "unlisted connection state"}
_ONE_HOT = (*_UNLISTED, "direction", "source_ip", "dest_ip")
_ADDRESS = {"private": "a private address", "public": "a public address",
            "ipv6": "an IPv6 address", "multicast": "a multicast or broadcast address"}
_NO_TIME = "no time of day expected"
_PORT_KINDS = {"well_known": "a well-known port below 1024",
               "registered": "a registered port 1024-49151",
               "dynamic": "a dynamic port 49152 and up"}


def typical_texts(field: str, observed: np.ndarray, expected: np.ndarray, terms: np.ndarray,
                  robust: bool, layout: str) -> list[str]:
    """What the model expects of `field` in each event, as text (module docstring).

    Args:
        field: a layer-1 field (`field_dims(layout)`).
        observed, expected, terms: the field's dims of the events' vectors, of the model's
            reconstructions and of the score's per-dim terms.
        robust, layout: the vectors' volume scaling and layout.

    Shapes:
        observed, expected, terms: (events, the field's dims).
    """
    names = field_names(field, layout)
    observed, expected = np.asarray(observed, np.float64), np.asarray(expected, np.float64)
    if counted(field, layout):
        return [_counted(field, names, o, e) for o, e in zip(observed, expected)]
    keep = value_dims(field, layout)  # not `l1.v5`'s never-seen dim: the value is expected
    names, observed, expected = names[:keep], observed[:, :keep], expected[:, :keep]
    terms = np.asarray(terms)[:, :keep]
    if field == EXTRA_FIELD:
        return [_extra(o, e, t) for o, e, t in zip(observed, expected, np.asarray(terms))]
    if field in HASHED:
        return [_hashed(o, e) for o, e in zip(observed, expected)]
    if field in _ONE_HOT:
        return [_one_hot(field, names, o, e) for o, e in zip(observed, expected)]
    if field in ("source_port", "dest_port"):
        return [_port(field, names, e) for e in expected]
    return [_NO_TIME if text == "-" else text
            for text in decode_rows(field, expected, robust, layout)]


def _pct(level: float) -> str:
    return f"{level:.0%}"


def _one_hot(field: str, names: list[str], observed: np.ndarray, expected: np.ndarray) -> str:
    """A one-hot block: its most expected values (a hashed dim as an unlisted value; an
    address's /24 buckets name nothing and are left out)."""
    mine = int(observed.argmax()) if observed.max() >= SINGLE else None
    labels = {}
    for d, name in enumerate(names):
        if "/" in name:  # an address's hashed /24 (/48) bucket
            continue
        if "#" in name:
            noun = _UNLISTED[field]
            labels[d] = (f"an {noun} hashed like this one" if d == mine else
                         f"an {noun} of another hash bucket"
                         if mine is not None and "#" in names[mine] else f"an {noun}")
        else:
            value = name.split("=", 1)[1] if "=" in name else name.split(":", 1)[1]
            labels[d] = _ADDRESS.get(value, value)
    order, seen = [], set()
    for d in sorted(labels, key=lambda d: -expected[d]):  # hashed buckets alike: the first
        if labels[d] not in seen:
            order.append(d)
            seen.add(labels[d])
    best = order[0]
    named = [f"{labels[d]} {_pct(expected[d])}" for d in order[:2] if expected[d] >= SHOWN]
    if expected[best] >= SINGLE:
        return f"{labels[best]} ({_pct(expected[best])})" + "".join(
            f", {labels[d]} ({_pct(expected[d])})" for d in order[1:2] if expected[d] >= SHOWN)
    if sum(expected[d] for d in labels) < SINGLE:
        return "none expected" + (f" (at most {named[0]})" if named else "")
    return f"no single value expected ({', '.join(named)})"


def _port(field: str, names: list[str], expected: np.ndarray) -> str:
    """A port: the kinds the model expects, and a common service port. Not the number read
    back from the port/65535 dim: a reconstruction there is a blend of the training ports
    (17165 where 443 and 53 are common), a port training may never have had."""
    level = {name.split(":", 1)[1]: float(expected[d]) for d, name in enumerate(names)
             if ":" in name}
    kinds = sorted(_PORT_KINDS, key=lambda k: -level[k])
    common = (f", a common service port ({_pct(level['common'])})"
              if level["common"] >= SHOWN else "")
    best = kinds[0]
    if level[best] >= SINGLE:
        return f"{_PORT_KINDS[best]} ({_pct(level[best])})" + common
    shown = [f"{_PORT_KINDS[k]} {_pct(level[k])}" for k in kinds[:2] if level[k] >= SHOWN]
    if sum(level[k] for k in kinds) < SINGLE:
        return "none expected" + (f" (at most {shown[0]})" if shown else "")
    return f"no single kind expected ({', '.join(shown)})" + common


def _counted(field: str, names: list[str], observed: np.ndarray, expected: np.ndarray) -> str:
    """An `l1.v4` identity field (present, rarity, never seen) or pair (never seen)."""
    never = names.index(f"{field}:{NEVER_SEEN}")
    n_hat, n = expected[never], observed[never]
    if f"{field}:present" not in names:  # a pair: never seen together
        if n_hat >= SINGLE:
            return f"a pair never seen in training ({_pct(n_hat)})" + (
                "" if n >= SINGLE else "; this pair was seen")
        return f"a pair seen in training ({_pct(1 - n_hat)})" + (
            "; this pair never was" if n >= SINGLE else "")
    at, rare = names.index(f"{field}:present"), names.index(f"{field}:rarity")
    p_hat, r_hat, p, r = expected[at], expected[rare], observed[at], observed[rare]
    if p_hat < SINGLE:
        return f"no value expected ({_pct(1 - p_hat)})"
    if n_hat >= SINGLE:
        return f"a value never seen in training ({_pct(n_hat)})" + (
            "; this one was seen" if p >= SINGLE and n < SINGLE else "")
    word = "common" if r_hat < 1 / 3 else "uncommon" if r_hat < 2 / 3 else "rare"
    text = f"a{'n' if word == 'uncommon' else ''} {word} value seen in training " \
           f"({_pct(p_hat * (1 - n_hat))})"
    if p < SINGLE:
        return f"{text}; this event has none"
    if n >= SINGLE:
        return f"{text}; this one never seen"
    if abs(r - r_hat) >= 0.2:
        return (f"{text}; this one {'rarer' if r > r_hat else 'more common'} "
                f"(rarity {r:.2f} vs {r_hat:.2f})")
    return text


def _hashed(observed: np.ndarray, expected: np.ndarray) -> str:
    """An identity field's hash buckets (`l1.v3`): they name no value, only whether the
    expected one shares this event's bucket."""
    mine = int(observed.argmax()) if observed.max() > 0 else None
    best = int(expected.argmax())
    if expected[best] >= SINGLE:
        return (f"a value hashed like this one ({_pct(expected[best])})" if best == mine
                else f"a value of another hash bucket ({_pct(expected[best])})")
    if expected.sum() < SINGLE:
        return "none expected"
    return f"no single value expected (hash buckets at most {_pct(expected[best])})"


def _extra(observed: np.ndarray, expected: np.ndarray, terms: np.ndarray) -> str:
    """The extra fields' 16 shared buckets: the level expected at the bucket the reason names
    (the event's set bucket of largest term, as its `observed` text does), and the share of the
    term in buckets the model expected set that this event leaves empty."""
    is_set = observed > 0
    lacking = ~is_set & (expected >= SINGLE)
    total = float(terms.sum())
    share = float(terms[lacking].sum()) / total if total > 0 else 0.0
    buckets = f"{int(lacking.sum())} bucket{'s' if lacking.sum() > 1 else ''}"
    missing = f"{_pct(share)} from {buckets} of fields this event lacks"
    if not is_set.any():
        return f"fields this event lacks ({buckets})" if lacking.any() else "none expected"
    at = int(np.where(is_set, terms, -np.inf).argmax())
    level = expected[at]
    text = (f"their hash bucket at {_pct(level)}" if observed[at] >= 0.99 else
            f"their hash bucket at {level:.2f} (this number: {observed[at]:.2f}, log-scaled)")
    return f"{text}; {missing}" if lacking.any() and share >= 0.25 else text
