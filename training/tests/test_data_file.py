"""A version's training data file, fingerprinted at registration and checked by `registry show`
(`training.registry.data_file`, trial G7)."""

from __future__ import annotations

import json

from training.registry.data_file import ENDS, change, fingerprint
from training.tests.cli_run import run_cli

SME = "slips_ctu_sme_11_labeled_zeek/zeek-labeled/conn.log.labeled"
TSV10 = "slips_zeek_tsv_test10/conn.log"


def test_a_later_pipeline_run_in_the_workdir_is_named_in_registry_show(datasets, tmp_path):
    """Two pipeline runs in one workdir: 1.0.0 still named w/events.parquet, which held the
    second run's events, and nothing said so. `registry show` now says the file changed since
    1.0.0 was registered; 1.1.0's is the one it learnt from."""
    work = tmp_path / "w"
    for source in (SME, TSV10):
        run_cli("pipeline", "--source", f"zeek:{datasets / source}", "--workdir", str(work),
                "--epochs", "1", "--layers", "layer1")
    show = ["registry", "show", "--workdir", str(work), "--model", "layer1_vae", "--version"]
    first = json.loads(run_cli(*show, "1.0.0", "--json"))
    recorded = first["training_dataset_file"]
    assert recorded["path"] == str((work / "events.parquet").resolve())
    size_now = (work / "events.parquet").stat().st_size
    assert recorded["size"] != size_now
    said = (f"changed since registration: {size_now:,} bytes now, {recorded['size']:,} then")
    assert first["training_dataset_change"] == said
    lines = [line for line in run_cli(*show, "1.0.0").splitlines()
             if line.startswith("training data")]
    assert lines == [f"training data        {work / 'events.parquet'} ({said}; the dataset "
                     "fingerprints below are what it learnt from)"]
    second = json.loads(run_cli(*show, "1.1.0", "--json"))
    assert second["training_dataset_change"] is None
    assert second["training_dataset_file"]["size"] == size_now
    assert f"training data        {work / 'events.parquet'}\n" in run_cli(*show, "1.1.0")


def test_fingerprint_hashes_a_small_file_whole_and_a_large_one_at_its_ends(tmp_path):
    small = tmp_path / "small.bin"
    small.write_bytes(b"abc")
    assert fingerprint(small) == {
        "path": str(small.resolve()), "size": 3, "hashed": "whole file",
        "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}
    assert change(fingerprint(small)) is None
    recorded = fingerprint(small)
    small.write_bytes(b"abd")
    assert change(recorded) == "changed since registration: same size, other content " \
                               "(whole file hashed)"
    small.write_bytes(b"abcd")
    assert change(recorded) == "changed since registration: 4 bytes now, 3 then"
    small.unlink()
    assert change(recorded) == f"no longer at {small.resolve()}"

    large = tmp_path / "large.bin"
    content = bytearray(3 * ENDS)
    large.write_bytes(bytes(content))
    recorded = fingerprint(large)
    assert (recorded["size"], recorded["hashed"]) == (3 * ENDS, "first and last MiB")
    content[ENDS + 10] = 1  # in the middle, the size kept: the cheap check misses it
    large.write_bytes(bytes(content))
    assert change(recorded) is None
    content[-1] = 1  # in the last MiB (a Parquet footer): seen
    large.write_bytes(bytes(content))
    assert change(recorded) == "changed since registration: same size, other content " \
                               "(first and last MiB hashed)"


def test_no_fingerprint_without_a_file():
    assert fingerprint(None) is None and fingerprint("") is None
    assert fingerprint("es:https://es01:9200/logs-*") is None
    assert fingerprint("/") is None  # a folder
    assert change(None) is None and change({}) is None
