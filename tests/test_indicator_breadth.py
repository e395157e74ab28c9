"""IP indicators no wider than the deny list allows (/8, /32 for IPv6): refused from the API, left
out (and reported) from files, so one line cannot mark mail from a whole region of the internet."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mailmoat.intel import IntelIndex, load_file
from tests.support.webkit import web_env

API = "/api/v1"
WIDE_FILE = "ip:0.0.0.0/0\nip:10.0.0.0/7\nip:2001:db8::/16\nip:10.0.0.0/8\nip:2001:db8::/32\nip:198.51.100.7\n"


def test_wide_networks_in_files_are_left_out_and_named(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    feed = tmp_path / "feed.txt"
    feed.write_text(WIDE_FILE, encoding="utf-8")
    skipped: list[str] = []
    assert [i.value for i in load_file(feed, skipped)] == ["10.0.0.0/8", "2001:db8::/32", "198.51.100.7"]
    assert skipped == ["line 1: 0.0.0.0/0 is wider than /8", "line 2: 10.0.0.0/7 is wider than /8",
                       "line 3: 2001::/16 is wider than /32"]
    with caplog.at_level(logging.WARNING, logger="mailmoat.intel"):
        idx = IntelIndex([str(tmp_path)])
    assert idx.match_ip("192.0.2.1") is None and idx.match_ip("10.1.2.3") is not None
    assert "feed.txt line 1: 0.0.0.0/0 is wider than /8" in caplog.text
    csv_feed = tmp_path / "iocs.csv"
    csv_feed.write_text("kind,value\nip,0.0.0.0/1\nip,203.0.113.0/24\n", encoding="utf-8")
    assert [i.value for i in load_file(csv_feed, [])] == ["203.0.113.0/24"]


def test_the_api_refuses_a_wide_network_and_reports_those_left_out_of_an_import(tmp_path: Path) -> None:
    with web_env(tmp_path) as env:
        c, h = env.client, env.as_role("analyst")
        for wide in ("0.0.0.0/0", "10.0.0.0/7", "::/0", "2001:db8::/31"):
            r = c.post(f"{API}/indicators", json={"kind": "ip", "value": wide, "recall": False}, headers=h)
            assert r.status_code == 422 and "wider than" in r.text, (wide, r.text)
        ok = c.post(f"{API}/indicators", json={"kind": "ip", "value": "10.0.0.0/8", "recall": False}, headers=h)
        assert ok.status_code == 201, ok.text
        r = c.post(f"{API}/indicators/import", files={"file": ("feed.txt", WIDE_FILE.encode(), "text/plain")},
                   data={"recall": "false"}, headers=h)
        assert r.status_code == 201, r.text
        assert r.json()["count"] == 3 and r.json()["skipped"] == [
            "line 1: 0.0.0.0/0 is wider than /8", "line 2: 10.0.0.0/7 is wider than /8", "line 3: 2001::/16 is wider than /32"]
        only_wide = c.post(f"{API}/indicators/import", files={"file": ("w.txt", b"ip:0.0.0.0/0\n", "text/plain")}, headers=h)
        assert only_wide.status_code == 422 and "0.0.0.0/0 is wider than /8" in only_wide.text
        listed = c.get(f"{API}/indicators", params={"kind": "ip"}, headers=h).json()
        assert "0.0.0.0/0" not in {i["value"] for i in listed["items"]}
        assert [len(f["skipped"]) for f in listed["files"] if f["file"].endswith("feed.txt")] == [3]
