"""`maximus-train`'s command line as a new user meets it: help on every command and flag, global
flags anywhere, close matches for typos, `train` and `tune` as real subcommands.

In-process calls of `training.cli.main.main`, the console script's entry point.
"""

from __future__ import annotations

import argparse
import errno
import os
import re
import sys

import pytest

from training.cli.main import build_parser, main
from training.cli.options import exit_code
from training.cli.parser import walk
from training.tests.registry_fixtures import save_tiny


def _flags(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings
            and not isinstance(a, argparse._HelpAction)]


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_every_command_and_action_has_help_and_every_flag_a_description():
    parsers = dict(walk(build_parser()))
    paths = sorted(" ".join(p) for p in parsers)
    assert paths == sorted([
        "", "collect", "pipeline", "demo", "preprocess", "validate", "split", "train",
        "train layer1", "train layer2", "train layer3", "evaluate", "tune", "registry",
        "registry list", "registry show", "registry history", "registry compare",
        "registry register", "registry promote", "registry alias", "registry mirror", "registry rollback", "retrain",
        "score"])
    for path, parser in parsers.items():
        where = " ".join(path) or "maximus-train"
        assert parser.description, f"{where} has no description"
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {a.dest: a.help for a in action._choices_actions}
                assert all(helps.values()) and set(helps) == {
                    n for n, p in action._name_parser_map.items()
                    if n in helps}, f"{where}: a command without help: {helps}"
        for action in _flags(parser):
            assert action.help and len(action.help) > 8, \
                f"{where} {action.option_strings[0]} has no description"
        text = parser.format_help()
        assert "(default: None)" not in text and "%(default)" not in text, where


def test_help_shows_the_real_defaults(capsys, monkeypatch):
    monkeypatch.setenv("MAXIMUS_DATA_ROOT", "/srv/maximus")
    assert main(["train", "layer1", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert text.startswith("usage: maximus-train train layer1 ")
    assert "where the checkpoints go ($MAXIMUS_DATA_ROOT/checkpoints) (default: " \
           "/srv/maximus/checkpoints)" in text
    assert "--num_epochs NUM_EPOCHS, --num-epochs NUM_EPOCHS epochs at most (default: 100)" in text
    assert "--hidden_dim HIDDEN_DIM, --hidden-dim HIDDEN_DIM width of the hidden layers " \
           "(default: 96)" in text
    assert main(["train", "layer3", "--help"]) == 0
    assert "(default: 16 16 16 16)" in " ".join(capsys.readouterr().out.split())
    assert main(["pipeline", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: the config's workdir, else maximus-run)" in text
    assert main(["registry", "list", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: $MAXIMUS_DATA_ROOT/models, now /srv/maximus/models;" in text
    assert "--model-path" not in text and "--json" in text  # list's own flags only


def test_a_group_without_its_action_shows_its_help(capsys):
    assert main(["train"]) == 2
    out = capsys.readouterr().out
    assert out.startswith("usage: maximus-train train") and "layer1 (layer1_sensory" in out
    assert "layer3 (layer3_operational, operational, 3)" in out
    assert main(["registry"]) == 2
    out = capsys.readouterr().out
    for action in ("list", "show", "history", "register", "promote", "alias", "rollback"):
        assert f"    {action} " in out
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [
    ["-v", "registry", "list", "--registry-dir", "{missing}"],
    ["registry", "list", "--registry-dir", "{missing}", "-v"],
    ["registry", "list", "-v", "--registry-dir", "{missing}"],
    ["registry", "-v", "list", "--registry-dir", "{missing}"],
])
def test_global_flags_before_or_after_the_command(argv, tmp_path, capsys):
    """-v anywhere: the error comes with its traceback (and only with -v)."""
    argv = [a.format(missing=tmp_path / "nope") for a in argv]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().endswith(
        f"error: no model registry at {tmp_path / 'nope'} (it has no registry.db); registering "
        "a model creates one")
    assert main([a for a in argv if a != "-v"]) == 1
    _one_error_line(capsys.readouterr().err)


def test_global_flags_parse_at_any_level():
    parser = build_parser()
    for argv in (["-q", "collect", "--source", "json:x"], ["collect", "--source", "json:x", "-q"],
                 ["train", "layer2", "--train_data", "x", "--quiet"],
                 ["tune", "--train_data", "x", "--val_data", "y", "-q"]):
        args = parser.parse_args(argv)
        assert (args.quiet, args.verbose) == (True, False), argv
    assert parser.parse_args(["registry", "show", "--model", "m", "-v"]).verbose is True


@pytest.mark.parametrize("argv, message", [
    (["collect", "--sorce", "json:x"],
     "maximus-train collect: error: unrecognized flag --sorce (did you mean --source?)"),
    (["collect", "--source", "json:x", "--max-evnts", "5"],
     "maximus-train collect: error: unrecognized flag --max-evnts (did you mean --max-events?)"),
    (["pipelin", "--source", "json:x"],
     "maximus-train: error: argument COMMAND: unknown command 'pipelin' (did you mean "
     "pipeline?)"),
    (["registry", "lst"], "maximus-train registry: error: argument ACTION: unknown action "
                          "'lst' (did you mean list?)"),
    (["split", "--data", "x.npz", "--strategy", "temporl"],
     "maximus-train split: error: argument --strategy: unknown value 'temporl' "
     "(did you mean temporal?)"),
    (["train", "layr1", "--train_data", "x"],
     "maximus-train train: error: argument LAYER: unknown layer 'layr1' (did you mean layer1?); "
     "choose from layer1, layer2, layer3 (see"),
    (["train", "layer1", "--train_data", "x", "--hiden-dim", "3"],
     "maximus-train train layer1: error: unrecognized flag --hiden-dim (did you mean "
     "--hidden-dim?)"),
    (["tune", "--train_data", "x", "--val_data", "y", "--n-trails", "3"],
     "maximus-train tune: error: unrecognized flag --n-trails (did you mean --n-trials?)"),
    (["collect", "--source", "cvs:file.csv"],
     "error: unknown source type 'cvs' (did you mean csv?) in 'cvs:file.csv'; use one of csv, "),
    (["pipeline", "--source", "data=zek:/var/log/zeek"],
     "error: unknown source type 'zek' (did you mean zeek?) in 'data=zek:/var/log/zeek'; use "),
])
def test_a_mistyped_flag_command_or_choice_gets_a_close_match(argv, message, capsys):
    assert main(argv) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith(message), line


@pytest.mark.parametrize("argv, message", [
    (["pipeline", "--source", "json:x", "--epochs", "0"],
     "error: --epochs must be an integer >= 1, got 0"),
    (["pipeline", "--source", "json:x", "--lr", "0"], "error: --lr must be > 0, got 0.0"),
    (["retrain", "--epochs", "0"], "error: --epochs must be >= 1, got 0"),
    (["retrain", "--alert-factor", "0.5"], "error: --alert-factor must be >= 1, got 0.5"),
    (["retrain", "--alert_factor", "0.5"], "error: --alert_factor must be >= 1, got 0.5"),
    (["retrain", "--lr", "-1"], "error: --lr must be > 0, got -1.0"),
    (["retrain", "--drift-share", "0"], "error: --drift-share must be in (0, 1], got 0.0"),
    (["retrain", "--drift_share", "1.5"], "error: --drift_share must be in (0, 1], got 1.5"),
    (["score", "--model", "m", "--input", "json:x", "--output", "o.parquet", "--alert-factor",
      "0"], "error: --alert-factor must be >= 1, got 0.0"),
    # score takes its events as --source too, as collect, pipeline and evaluate do
    (["score", "--model", "m", "--source", "json:x", "--output", "o.parquet", "--alert-factor",
      "0"], "error: --alert-factor must be >= 1, got 0.0"),
    (["score", "--model", "m", "--input", "json:x", "--output", "o.parquet",
      "--max-alert-rate", "2"], "error: --max-alert-rate must be in (0, 1), got 2.0 (a share"),
    (["train", "layer1", "--train_data", "x.npz", "--patience", "-1"],
     "error: --patience must be >= 0 or None, got -1"),
    (["collect", "--source", "json:x", "--checkpoint-every", "0"],
     "error: --checkpoint-every must be an integer >= 1, got 0"),
])
def test_a_bad_value_is_named_by_the_flag_typed_not_the_parameter(argv, message, tmp_path,
                                                                   monkeypatch, capsys):
    """`retrain --epochs 0` said `num_epochs must be >= 1`; each error names the flag as typed
    (`--alert_factor` stays so), and is refused before anything is read or written."""
    monkeypatch.chdir(tmp_path)
    assert main([*argv, "--registry-dir" if argv[0] in ("retrain", "score") else "-q",
                 *(["models"] if argv[0] in ("retrain", "score") else [])]) == 2
    assert _one_error_line(capsys.readouterr().err).startswith(message)
    assert not any(tmp_path.iterdir())


def test_a_value_from_a_config_file_keeps_its_key(tmp_path, capsys):
    """The flag is named only when the user typed it: a TOML value keeps its TOML key."""
    config = tmp_path / "run.toml"
    config.write_text("[train]\nepochs = 0\n")
    assert main(["pipeline", "--config", str(config), "--source", "json:x", "--workdir",
                 str(tmp_path / "w")]) == 2
    assert _one_error_line(capsys.readouterr().err) == (
        f"error: {config}: train.epochs must be an integer >= 1, got 0")


def test_tune_takes_the_documented_flags(tmp_path, capsys):
    """`tune --help`, `tune --train_data ...` and the pass-through spelling `tune -- ...` all
    reach the tuner (here it refuses the missing split file: exit 1, one line)."""
    assert main(["tune", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: maximus-train tune") and "--n_trials N_TRIALS" in out
    missing = str(tmp_path / "missing.npz")
    for argv in (["tune", "--train_data", missing, "--val_data", missing, "--n_trials", "1"],
                 ["tune", "--", "--train_data", missing, "--val_data", missing],
                 ["-q", "tune", "--", "--train-data", missing, "--val-data", missing]):
        assert main(argv) == 1, argv
        assert _one_error_line(capsys.readouterr().err) == f"error: {missing}: no such file"
    assert main(["train", "layer1", "--", "--train_data", missing]) == 1
    assert missing in _one_error_line(capsys.readouterr().err)


def test_every_flag_takes_dashes_and_underscores():
    """The flags of every command take both spellings (the seed's scripts used underscores)."""
    for path, parser in walk(build_parser()):
        for action in _flags(parser):
            long = [s for s in action.option_strings if s.startswith("--")]
            for flag in long:
                stem = flag[2:]
                if "-" in stem or "_" in stem:
                    other = "--" + (stem.replace("-", "_") if "-" in stem else
                                    stem.replace("_", "-"))
                    assert other in action.option_strings, (path, flag)


def test_exit_codes_are_documented_in_the_top_level_help(capsys):
    assert main(["--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert re.search(r"Exit codes: 0 success, 1 a pipeline error, 2 bad usage", text)
    assert "before or after the command" in text


@pytest.mark.parametrize("buffering", [1, -1], ids=["line-buffered", "block-buffered"])
def test_a_reader_that_closes_stdout_early_ends_the_command_quietly(buffering, tmp_path,
                                                                     monkeypatch, capsys):
    """`maximus-train registry list | head -1`: no `error: Broken pipe`; the status is a Unix
    tool's whose reader went away (128 + SIGPIPE), whether stdout is flushed at each line
    (PYTHONUNBUFFERED, a terminal) or only at the end."""
    flags = ["--registry-dir", str(tmp_path / "models")]
    assert main(["-q", "registry", "register", "--model", "tiny", "--model-path",
                 str(save_tiny(tmp_path / "tiny.pt")), *flags]) == 0
    capsys.readouterr()
    read, write = os.pipe()
    os.close(read)  # the reader has gone before the first line
    with open(write, "w", buffering=buffering) as closed:
        monkeypatch.setattr(sys, "stdout", closed)
        assert main(["registry", "list", *flags]) == 141
    assert capsys.readouterr().err == ""


def test_a_broken_pipe_other_than_stdout_is_still_an_error(capsys):
    def run() -> int:
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    assert exit_code(run) == 1
    assert capsys.readouterr().err == "error: Broken pipe\n"
