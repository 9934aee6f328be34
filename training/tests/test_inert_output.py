"""Text of the logs read reaches warnings, errors and notes (a file's name, a label leak's
field and values, an event type): a terminal control in it is shown as its escape, never sent
to the analyst's terminal, where it could recolour, retitle or clear it, or rewrite the lines
above (red-team trial: a field named with ESC sequences came out raw in the leak warning)."""

from __future__ import annotations

from training.cli.main import main
from training.console.terminal import inert


def test_inert_escapes_what_a_terminal_acts_on_and_keeps_the_rest():
    assert inert("a\x1b[31mb\tc\nd\re\x9b31m\u202eé\x7f ok") == \
        "a\\x1b[31mb\tc\nd\\re\\x9b31m\\u202eé\\x7f ok"
    assert inert("10.0.0.5:443 -> 8.8.8.8:53 ünïcode") == "10.0.0.5:443 -> 8.8.8.8:53 ünïcode"


def test_a_warning_and_an_error_naming_a_hostile_file_name_show_it_inert(
        tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    name = "\x1b]0;owned\x07\x1b[2Jlog\r.json"
    (tmp_path / name).write_text("")
    assert main(["collect", "--source", f"json:{name}", "--output", "c"]) == 0
    err = capsys.readouterr().err
    assert "warning: \\x1b]0;owned\\x07\\x1b[2Jlog\\r.json: no records" in err
    assert "\x1b" not in err and "\r" not in err and "\x07" not in err
    assert main(["collect", "--source", "json:\x1b]0;x\x07gone.json", "--output", "d"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: \\x1b]0;x\\x07gone.json: no such file or directory")
    assert "\x1b" not in err
