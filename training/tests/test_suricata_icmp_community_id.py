"""An EVE ICMP record's Community ID (`training.sources.suricata`), on the real magnc capture:
EVE writes an ICMP flow's type and code as `icmp_type`/`icmp_code` and no ports, so its
Community ID could not be computed and it never joined the Zeek conn of the same flow (trial T:
8 ICMPv6 flows of magnc had none, while every TCP/UDP flow joined its Zeek conn)."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json

from training.tests.conftest import collect

EVE = "suricata/magnc_server_eve.json"


def _spec_icmp6_id(src: str, dst: str, icmp_type: int, counter_type: int) -> str:
    """Community ID v1 by the spec's own steps: seed 0, the smaller (address, port) first, the
    ICMPv6 type and its counter-type as the ports."""
    ends = sorted([(ipaddress.ip_address(src).packed, icmp_type),
                   (ipaddress.ip_address(dst).packed, counter_type)])
    message = (b"\0\0" + ends[0][0] + ends[1][0] + bytes([58, 0])
               + ends[0][1].to_bytes(2, "big") + ends[1][1].to_bytes(2, "big"))
    return "1:" + base64.b64encode(hashlib.sha1(message).digest()).decode()  # noqa: S324  the spec's hash


def test_an_eve_icmp_flow_has_the_community_id_of_the_spec(datasets):
    records = [json.loads(line) for line in (datasets / EVE).read_text().splitlines()]
    icmp = [r for r in records if "icmp_type" in r]
    assert len(icmp) == 8 and all("src_port" not in r for r in icmp)
    events, _ = collect("suricata_logs", datasets / EVE)
    by_flow = {(r["source_ip"], r["dest_ip"], r["timestamp"]): r for r in events.to_pylist()
               if r["protocol"] == "icmpv6"}
    assert len(by_flow) == len(icmp)
    for record in icmp:
        assert (record["icmp_type"], record["icmp_code"]) == (135, 0)  # neighbor solicitation
        event = next(e for (src, dst, _), e in by_flow.items()
                     if ipaddress.ip_address(src) == ipaddress.ip_address(record["src_ip"])
                     and ipaddress.ip_address(dst) == ipaddress.ip_address(record["dest_ip"]))
        assert (event["source_port"], event["dest_port"]) == (135, 0)  # as Zeek's conn.log
        # 135 (solicitation) has the counter-type 136 (advertisement).
        assert event["community_id"] == _spec_icmp6_id(record["src_ip"], record["dest_ip"], 135, 136)
    # Every traffic record now has one (only the sensor's stats records have no flow).
    missing = [r["event_type"] for r in events.to_pylist() if r["community_id"] is None]
    assert set(missing) <= {"stats"}


def test_an_eve_icmp_flow_joins_the_zeek_conn_of_the_same_flow(datasets, tmp_path):
    record = next(json.loads(line) for line in (datasets / EVE).read_text().splitlines()
                  if '"icmp_type"' in line)
    zeek = tmp_path / "conn.log"  # the Zeek conn of that flow: ICMP type and code as ports
    zeek.write_text(json.dumps({
        "ts": 1677584043.371929, "uid": "CnSn1xUw2Ca6l7cHoa", "id.orig_h": record["src_ip"],
        "id.orig_p": record["icmp_type"], "id.resp_h": record["dest_ip"],
        "id.resp_p": record["icmp_code"], "proto": "icmp", "duration": 0.0, "orig_bytes": 32,
        "resp_bytes": 0, "conn_state": "OTH", "orig_pkts": 1, "orig_ip_bytes": 86,
        "resp_pkts": 0, "resp_ip_bytes": 0}) + "\n")
    conn, _ = collect("zeek_logs", zeek)
    eve, _ = collect("suricata_logs", datasets / EVE)
    ids = {r["community_id"] for r in eve.to_pylist() if r["protocol"] == "icmpv6"}
    assert conn["community_id"][0].as_py() in ids
