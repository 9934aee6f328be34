"""A Zeek TSV log given to a JSON reader (suricata:, json:, windows:) is refused naming zeek:,
as a Zeek JSON log given as suricata: is (`test_source_types.py`): before, suricata: quarantined
every line as malformed JSON ("no event collected: every record (369) ... malformed JSON"), and
json: and windows: refused it as an invalid JSON document, neither saying it is a Zeek log."""

from __future__ import annotations

import pytest

from training.cli.main import main
from training.errors import ConfigError
from training.sources.sniff import type_prefix
from training.tests.conftest import collect

TSV = ("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n"
       "#path\tconn\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\n"
       "#types\ttime\tstring\taddr\tport\taddr\tport\tenum\n"
       "1300000000.000000\tCabc\t10.0.0.1\t1234\t10.0.0.2\t80\ttcp\n")


@pytest.mark.parametrize("given", ["suricata_logs", "json_file", "windows_events"])
@pytest.mark.parametrize("bom", ["", "\ufeff"])
def test_a_zeek_tsv_log_given_to_a_json_reader_says_use_zeek(tmp_path, given, bom):
    path = tmp_path / "conn.log"
    path.write_text(bom + TSV, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        collect(given, path)
    assert str(caught.value) == (
        f"{path}: given as {type_prefix(given)}:PATH, but it is a Zeek TSV log (it starts with "
        "a #separator or #fields header line); this looks like Zeek: use zeek:PATH")
    table, collector = collect("zeek_logs", path)  # read as before with the right type
    assert table.num_rows == 1 and not collector.quarantined


def test_collect_of_the_real_log_refuses_it_in_one_line_and_leaves_no_folder(
        datasets, tmp_path, capsys):
    conn = datasets / "zeek_zat/tsv/conn.log"
    out = tmp_path / "collected"
    code = main(["collect", "--source", f"suricata:{conn}", "--output", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    assert err == (f"error: {conn}: given as suricata:PATH, but it is a Zeek TSV log (it starts "
                   "with a #separator or #fields header line); this looks like Zeek: use "
                   "zeek:PATH\n")
    assert not out.exists()
