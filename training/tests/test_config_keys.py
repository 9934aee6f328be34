"""A pipeline TOML file's mistakes, said at once: every unknown key in one error with its table
and the closest allowed key (`training.pipeline.config_keys`), value errors naming the file and
table, and the closest choice for a mistyped value, in the file and on the command line, from
one `did you mean` (`training.errors.closest`) (trial D7)."""

from __future__ import annotations

import re

import pytest

from training.cli.main import main
from training.errors import ConfigError, closest
from training.pipeline.config import load_config

# The trial's file: three typos (two keys, one value).
TYPO = ('workdir = "tomlrun"\nlayers = ["layer1"]\n[[sources]]\ntype = "zeek_logs"\n'
        'path = "trainlogs"\n[train]\nepocs = 2\n[train.layer1]\nhiden_dim = 32\n[split]\n'
        'strategy = "temporl"\n')


def _refused(tmp_path, text: str) -> str:
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    return str(refused.value).replace(str(path), "p.toml")


def test_every_unknown_key_is_named_in_one_error_then_the_value_with_its_file(tmp_path,
                                                                             capsys):
    assert _refused(tmp_path, TYPO) == (
        "p.toml: unknown keys in 2 tables: [train] epocs (did you mean epochs?); "
        "[train.layer1] hiden_dim (did you mean hidden_dim?)")
    fixed = TYPO.replace("epocs", "epochs").replace("hiden_dim", "hidden_dim")
    assert _refused(tmp_path, fixed) == (
        "p.toml [split]: strategy must be one of random, stratified, temporal, group, got "
        "'temporl' (did you mean temporal?)")
    assert main(["pipeline", "--config", str(tmp_path / "p.toml")]) == 2
    assert capsys.readouterr().err == (
        f"error: {tmp_path / 'p.toml'} [split]: strategy must be one of random, stratified, "
        "temporal, group, got 'temporl' (did you mean temporal?)\n")


def test_unknown_keys_without_a_close_one_list_what_their_table_allows(tmp_path):
    sources = '[[sources]]\ntype = "zeek_logs"\npath = "x"\n'
    assert _refused(tmp_path, sources + "[train.layer1]\nbogus = 1\nlatnt_dim = 2\n") == (
        "p.toml [train.layer1]: unknown key(s) bogus, latnt_dim (did you mean latent_dim?); "
        "allowed: batch_size, benign_only, beta, detector, dropout, epochs, error_floor, "
        "hidden_dim, keep_unknown, latent_dim, learning_rate, params, threshold")
    assert _refused(tmp_path, sources + "colour = 1\n[train.layr1]\nepochs = 1\n"
                    "[gate]\nmetrc = 'pr_auc'\n") == (
        "p.toml: unknown keys in 3 tables: [[sources]] #1 colour (allowed: column_names, "
        "connection_params, default_label, field_map, has_header, label_map, name, path, "
        "type); [gate] metrc (did you mean metric?); [train] layr1 (did you mean layer1?)")


@pytest.mark.parametrize("text, message", [
    ("[train]\nepochs = 0\n", "p.toml: train.epochs must be an integer >= 1, got 0"),
    ("[gate]\nmetric = 'roc_auk'\n",
     "p.toml [gate]: metric must be one of pr_auc, roc_auc, got 'roc_auk' (did you mean "
     "roc_auc?)"),
    ("[train.layer3]\nentity = 'hots'\n",
     "p.toml [train.layer3]: entity must be one of source_ip, dest_ip, host, user, got 'hots' "
     "(did you mean host?)"),
    ("[train.layer2]\ndetector = 'gnm'\n",
     "p.toml: train.layer2.detector must be one of gnn, autoencoder, ecod, iforest, knn, got "
     "'gnm' (did you mean gnn?)"),
])
def test_a_bad_value_names_the_file_and_the_closest_choice(tmp_path, text, message):
    assert _refused(tmp_path, '[[sources]]\ntype = "zeek_logs"\npath = "x"\n' + text) == message


def test_the_closest_match_takes_case_then_a_unique_prefix_then_the_spelling():
    stages = ["none", "staging", "production", "archived"]
    assert closest("prod", stages) == "production"  # difflib alone finds nothing
    assert closest("Staging", stages) == "staging"
    assert closest("archvied", stages) == "archived"
    assert closest("s", stages) == "staging"  # the one it begins
    assert closest("a", ["alpha", "able"]) is None  # two begin with it, none is close
    assert closest("xyz", stages) is None


@pytest.mark.parametrize("argv, hint", [
    (["registry", "list", "--stage", "prod"], "unknown value 'prod' (did you mean production?)"),
    (["tune", "--metric", "pr_aux", "--train_data", "a", "--val_data", "b"],
     "unknown value 'pr_aux' (did you mean pr_auc?)"),
])
def test_a_mistyped_choice_on_the_command_line_gets_the_closest_one(argv, hint, capsys):
    assert main(argv) == 2
    assert re.search(re.escape(hint), capsys.readouterr().err)
