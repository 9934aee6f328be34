"""What a run leaves behind and what it tells: quarantined records written where the run is,
duplicates counted, temporary files of killed runs removed by the next run."""

from __future__ import annotations

import json

import pytest

from training.tests.reliability.harness import assert_ok, run_child
from training.tests.reliability.pipeline_runs import (
    cli_code, pipeline_toml, unlabeled_events,
)

pytestmark = pytest.mark.reliability

N_EVENTS, DUPLICATES, MALFORMED = 300, 12, 3


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """A pipeline run (layer 1, unlabeled, promoted) on events with duplicates and malformed
    lines; its stdout and paths."""
    directory = tmp_path_factory.mktemp("hygiene")
    events = unlabeled_events(directory, N_EVENTS, DUPLICATES, MALFORMED)
    work = directory / "run"
    result = run_child(cli_code("pipeline", "--config",
                                str(pipeline_toml(directory, events, work))))
    return {"stdout": assert_ok(result), "events": events, "work": work,
            "directory": directory}


def _quarantine_lines(stdout: str) -> list[dict]:
    """The records of the quarantine file whose path the command printed."""
    [path] = [word.rstrip(".,;)") for line in stdout.splitlines() for word in line.split()
              if word.rstrip(".,;)").endswith("quarantine.jsonl")]
    return [json.loads(line) for line in open(path)]


def test_quarantined_records_are_written_where_the_run_is(trained, observed):
    """Stage: pipeline
    Fault: 3 malformed (cut) lines at the end of a JSON Lines input given to `pipeline`, then to
        `score` (no -v).
    Expected: each command prints the path of a quarantine file (in the working directory;
        beside the scoring output) holding one record per malformed line with its file, line
        and reason; the counts printed match.
    """
    lines = list(range(N_EVENTS + DUPLICATES + 1, N_EVENTS + DUPLICATES + MALFORMED + 1))
    for stdout in (trained["stdout"], assert_ok(run_child(cli_code(
            "score", "--model", "layer1_vae", "--workdir", str(trained["work"]),
            "--input", f"json:{trained['events']}",
            "--output", str(trained["directory"] / "scored.parquet"))))):
        records = _quarantine_lines(stdout)
        assert [(r["file"], r["line"]) for r in records] == [
            (str(trained["events"]), n) for n in lines]
        assert all(r["reason"] for r in records)
        assert f"{MALFORMED} quarantined" in stdout
    observed(f"{MALFORMED} records with file, line and reason in the quarantine files of "
             "pipeline and score")


def test_duplicates_are_counted_and_kept_on_request(trained, observed):
    """Stage: scoring
    Fault: an input whose first 12 lines appear twice (exact duplicates, same event ids),
        given to `pipeline` and to `score`, then to `score --no-dedup`.
    Expected: `pipeline` and `score` print the number of duplicates they dropped (12), and
        score writes one row per distinct event; with --no-dedup it writes every line's event.
    """
    import pyarrow.parquet as pq

    assert f"{DUPLICATES} duplicate" in trained["stdout"]
    rows = {}
    for flags in ((), ("--no-dedup",)):
        out = trained["directory"] / f"scored{len(flags)}.parquet"
        stdout = assert_ok(run_child(cli_code(
            "score", "--model", "layer1_vae", "--workdir", str(trained["work"]),
            "--input", f"json:{trained['events']}", "--output", str(out), *flags)))
        rows[flags] = pq.read_metadata(out).num_rows
        if not flags:
            assert f"{DUPLICATES} duplicate" in stdout, stdout
    assert rows == {(): N_EVENTS, ("--no-dedup",): N_EVENTS + DUPLICATES}
    observed(f"score wrote {rows[()]} rows and said {DUPLICATES} duplicates were dropped; "
             f"--no-dedup wrote {rows[('--no-dedup',)]}")


def test_temporary_files_of_killed_runs_are_removed_by_the_next(trained, tmp_path, observed):
    """Stage: pipeline
    Fault: SIGKILL in the middle of three writes, each in its own process: `save_samples` of
        layer1_samples.npz (after 20 kB), `score`'s output file (after 1 kB), and `retrain
        --force`'s best checkpoint in its work folder under the system temporary folder.
    Expected: each kill leaves its temporary file or folder (`.<name>.<pid>.tmp`,
        `retrain-<pid>-*`); the next successful run of the same command removes it (its pid
        is dead), and leaves nothing of its own.
    """
    from training.tests.reliability.harness import assert_killed, demo_inputs, temporaries
    from training.tests.reliability.test_crashes import SAVE_SAMPLES

    paths, _, _ = demo_inputs(tmp_path, n_events=300, n_files=1)
    pre = tmp_path / "pre"
    save = SAVE_SAMPLES.format(events=str(paths[0]), out=str(pre))
    assert_killed(run_child(save, {"action": "kill", "pattern": "*layer1_samples.npz*",
                                   "nth": 2, "after_bytes": 20_000}))
    left = [p.name for p in temporaries(pre)]
    assert_ok(run_child(save))
    assert left and temporaries(pre) == []

    out = tmp_path / "scores" / "scored.parquet"
    score = cli_code("score", "--model", "layer1_vae", "--workdir", str(trained["work"]),
                     "--input", f"json:{trained['events']}", "--output", str(out))
    assert_killed(run_child(score, {"action": "kill", "pattern": ".scored.parquet.*",
                                    "after_bytes": 1000}))
    left.append(temporaries(out.parent)[0].name)
    assert_ok(run_child(score))
    assert temporaries(out.parent) == []

    # Retraining validates on benign units: a labeled run's splits.
    labeled = tmp_path / "labeled"
    assert_ok(run_child(cli_code("pipeline", "--config", str(pipeline_toml(
        tmp_path, unlabeled_events(tmp_path, labels=True), labeled)))))
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    retrain = ("import tempfile\n"  # the system temporary folder of this child
               f"tempfile.tempdir = {str(system_tmp)!r}\n"
               + cli_code("retrain", "--workdir", str(labeled), "--force", "--epochs", "1"))
    assert_killed(run_child(retrain, {"action": "kill", "pattern": "*.pt*",
                                      "after_bytes": 500}))
    left += [p.name for p in system_tmp.iterdir()]
    assert len(left) == 3
    assert_ok(run_child(retrain))
    assert list(system_tmp.iterdir()) == []
    observed(f"removed by the next run: {', '.join(left)}")
