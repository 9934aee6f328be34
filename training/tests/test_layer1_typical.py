"""A layer-1 reason's `typical` in words (`training.layers.layer1_typical`): the most expected
value with its level, "no single value expected" or "none expected" instead of "-", and never
the observed value called typical ("this value") for a field that costs; on hand-made
reconstructions, and on real Windows events (OTRF) with a VAE fitted on two other recordings."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
import torch

from training.detectors.vae import Layer1VAE
from training.features.layer1 import Layer1Featurizer
from training.features.layer1_names import NEVER_SEEN, field_dims, field_names
from training.layers.layer1 import Layer1
from training.layers.layer1_typical import typical_texts
from training.tests.conftest import collect

OTRF = "windows_otrf_security_datasets"
OLD_TEXTS = {"this value", "another value", "-", "other", "set"}


def _block(field: str, layout: str, levels: dict[str, float]) -> np.ndarray:
    """One row of a field's dims, each named dim at its level, the rest 0."""
    names = field_names(field, layout)
    row = np.zeros((1, len(names)))
    for name, level in levels.items():
        row[0, names.index(name)] = level
    return row


def _typical(field: str, observed: dict, expected: dict, layout: str = "l1.v4",
             terms: dict | None = None) -> str:
    obs, exp = _block(field, layout, observed), _block(field, layout, expected)
    t = _block(field, layout, terms) if terms else (obs - exp) ** 2
    return typical_texts(field, obs, exp, t, False, layout)[0]


def test_a_one_hot_field_names_the_most_expected_values_and_their_levels():
    assert _typical("conn_state", {"conn_state=S0": 1}, {"conn_state=SF": 0.62,
                                                         "conn_state=S0": 0.3}) == \
        "SF (62%), S0 (30%)"
    # the old "-": no dim reaches 0.5
    assert _typical("conn_state", {"conn_state=S0": 1}, {"conn_state=SF": 0.31,
                                                         "conn_state=REJ": 0.22}) == \
        "no single value expected (SF 31%, REJ 22%)"
    assert _typical("protocol", {"protocol=icmp": 1}, {"protocol=tcp": 0.12}) == \
        "none expected (at most tcp 12%)"
    # the old "other": hashed buckets, told apart from this event's own bucket
    assert _typical("event_type", {"event_type=process": 1}, {"event_type#1": 0.76,
                                                              "event_type=network": 0.11}) == \
        "an uncategorized event type (76%), network (11%)"
    assert _typical("event_type", {"event_type#2": 1}, {"event_type#1": 0.7,
                                                        "event_type#3": 0.2}) == \
        "an uncategorized event type of another hash bucket (70%)"
    assert _typical("dest_ip", {"dest_ip:public": 1}, {"dest_ip:private": 0.98}) == \
        "a private address (98%)"


def test_a_port_names_the_kinds_expected_not_a_blended_number():
    # A reconstruction of port/65535 at 0.26 read back as port 17165, a port no training event
    # had (trial D4): the kinds and the common-port flag are what the model expects.
    observed = {"dest_port:well_known": 1, "dest_port/65535": 443 / 65535, "dest_port:common": 1}
    assert _typical("dest_port", observed, {"dest_port:registered": 0.71,
                                            "dest_port/65535": 0.26,
                                            "dest_port:common": 0.2}) == \
        "a registered port 1024-49151 (71%), a common service port (20%)"
    mine = {"source_port:registered": 1, "source_port/65535": 5353 / 65535}
    assert _typical("source_port", mine, {"source_port:dynamic": 0.45,
                                              "source_port:registered": 0.4,
                                              "source_port/65535": 0.6}) == \
        "no single kind expected (a dynamic port 49152 and up 45%, " \
        "a registered port 1024-49151 40%)"
    assert _typical("dest_port", observed, {"dest_port:well_known": 0.12}) == \
        "none expected (at most a well-known port below 1024 12%)"


def test_an_identity_field_says_what_training_saw_and_why_this_one_costs():
    assert _typical("command_line", {"command_line:present": 1, "command_line:rarity": 1,
                                     f"command_line:{NEVER_SEEN}": 1},
                    {"command_line:present": 0.02}) == "no value expected (98%)"
    seen = {"user:present": 0.8, "user:rarity": 0.1, f"user:{NEVER_SEEN}": 0.05}
    assert _typical("user", {"user:present": 1, "user:rarity": 1, f"user:{NEVER_SEEN}": 1},
                    seen) == "a common value seen in training (76%); this one never seen"
    assert _typical("user", {"user:present": 1, "user:rarity": 0.62}, seen) == \
        "a common value seen in training (76%); this one rarer (rarity 0.62 vs 0.10)"
    assert _typical("user", {}, seen) == \
        "a common value seen in training (76%); this event has none"
    pair = "parent_process>process"
    assert _typical(pair, {f"{pair}:{NEVER_SEEN}": 1}, {f"{pair}:{NEVER_SEEN}": 0.03}) == \
        "a pair seen in training (97%); this pair never was"


def test_hash_buckets_say_whether_the_expected_value_shares_this_ones():
    assert _typical("domain", {"domain#0": 1}, {"domain#0": 0.9}, "l1.v3") == \
        "a value hashed like this one (90%)"
    assert _typical("domain", {"domain#0": 1}, {"domain#2": 0.9}, "l1.v3") == \
        "a value of another hash bucket (90%)"
    assert _typical("domain", {"domain#0": 1}, {"domain#2": 0.05}, "l1.v3") == "none expected"
    # the old "this value": the event's first set bucket was expected, while the bucket the
    # reason names (largest term) was not, and fields the event lacks cost the most
    observed = {"extra#0": 1, "extra#9": 1}
    expected = {"extra#0": 0.99, "extra#9": 0.18, "extra#4": 0.98, "extra#8": 0.99}
    terms = {"extra#9": 0.68, "extra#4": 0.97, "extra#8": 0.97}
    assert _typical("extra fields", observed, expected, terms=terms) == (
        "their hash bucket at 18%; 74% from 2 buckets of fields this event lacks")


@pytest.fixture(scope="module")
def windows(datasets, tmp_path_factory):
    """A layer-1 VAE fitted on two OTRF recordings; the third (comsvcs MiniDump of lsass)."""
    folder = tmp_path_factory.mktemp("otrf")
    for name in ("cmd_psexec_lsa_secrets_dump", "covenant_copy_smb_CreateRequest"):
        shutil.copy(datasets / OTRF / f"{name}.zip", folder)
    train, _ = collect("windows_events", folder)
    lsass, _ = collect("windows_events", datasets / OTRF / "psh_lsass_memory_dump_comsvcs.zip")
    layer = Layer1(Layer1Featurizer().fit(train))
    torch.manual_seed(0)
    features = torch.from_numpy(layer.featurize(train).features)
    model = Layer1VAE(hidden_dim=64, latent_dim=16, dropout=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    order = torch.Generator().manual_seed(0)
    for _ in range(10):
        for rows in torch.randperm(len(features), generator=order).split(64):
            optimizer.zero_grad()
            model.training_step(features[rows]).backward()
            optimizer.step()
    model.eval()
    return layer, model, lsass


def test_real_windows_reasons_say_what_is_expected_in_words(windows):
    layer, model, lsass = windows
    units = layer.featurize(lsass)
    with torch.no_grad():
        scores = model.anomaly_score(torch.from_numpy(units.features)).numpy()
    top = np.argsort(-scores, kind="stable")[:20]
    reasons = layer.explain(model, units, top, events=lsass)
    layout = layer.data_spec.version
    never = {f: field_dims(layout)[f][field_names(f, layout).index(f"{f}:{NEVER_SEEN}")]
             for f in ("user", "host", "process", "command_line")}  # each field's dim
    for i, unit in zip(top, reasons):
        assert abs(sum(r.contribution for r in unit) - scores[i]) <= 1e-5
        for r in unit[:5]:
            assert r.typical is None or (r.typical not in OLD_TEXTS and r.typical != r.observed)
            if r.field in never and units.features[i, never[r.field]] >= 0.5 and \
                    re.match(r"an? \w+ value seen in training", r.typical):
                assert r.typical.endswith("; this one never seen"), r  # why it costs
    minidump = next(k for k, i in enumerate(top) if lsass["event_type"][int(i)].as_py() ==
                    "sysmon:1" and "MiniDump" in (lsass["command_line"][int(i)].as_py() or ""))
    line = next(r for r in reasons[minidump] if r.field == "command_line")
    assert "MiniDump" in line.observed and re.fullmatch(
        r"no value expected \(\d+%\)|an? (common|uncommon|rare) value seen in training "
        r"\(\d+%\); this one never seen", line.typical)
