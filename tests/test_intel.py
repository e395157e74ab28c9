"""Threat indicators: every file format, matching rules, hot reload, and the analyzer's findings."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mailmoat.analyzers.base import AnalysisContext, AnalyzerEnv
from mailmoat.analyzers.intel import IntelAnalyzer
from mailmoat.config import Settings
from mailmoat.intel import IntelIndex, load_file
from mailmoat.model import Envelope, Finding, Part, ReceivedHop
from tests.support.detmsg import message, simple, url

SHA = "a" * 64
SHA2 = "b" * 64


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_plain_lists(tmp_path: Path) -> None:
    p = _write(tmp_path / "phish-domains.txt", "# phishing domains\nevil.example\n\nBAD-Login.Example.  # trailing dot, case\nhxxps://defanged[.]example/x\nnot a domain\n")
    inds = load_file(p)
    assert [(i.kind, i.value) for i in inds] == [("domain", "evil.example"), ("domain", "bad-login.example"), ("url", "https://defanged.example/x")]
    assert inds[1].ref == "line 4" and inds[1].where() == "phish-domains.txt line 4"
    mixed = _write(tmp_path / "feed.txt", f"url:http://x.example/a\nsender:ceo@fake.example\nip:203.0.113.0/24\nsha256:{SHA}\n198.51.100.9\n{'c' * 32}\n")
    assert [(i.kind, i.value) for i in load_file(mixed)] == [
        ("url", "http://x.example/a"), ("sender", "ceo@fake.example"), ("ip", "203.0.113.0/24"), ("sha256", SHA), ("ip", "198.51.100.9"),
    ]  # fmt: skip


def test_csv(tmp_path: Path) -> None:
    p = _write(tmp_path / "iocs.csv", "type,value,source\ndomain,evil.example,CERT\nurl,https://evil.example/login,CERT\nmd5,abc,CERT\n")
    assert [(i.kind, i.value, i.source) for i in load_file(p)] == [("domain", "evil.example", "CERT"), ("url", "https://evil.example/login", "CERT")]
    p2 = _write(tmp_path / "plain.csv", f"ip,192.0.2.7\nsha256,{SHA}\n")
    assert [(i.kind, i.value) for i in load_file(p2)] == [("ip", "192.0.2.7"), ("sha256", SHA)]


def test_misp_event(tmp_path: Path) -> None:
    event = {
        "Event": {
            "info": "Salary subsidy phishing wave",
            "Attribute": [
                {"type": "domain", "value": "subsidy-pay.example", "to_ids": True, "uuid": "u1"},
                {"type": "url", "value": "https://subsidy-pay.example/scan", "to_ids": True},
                {"type": "ip-dst", "value": "203.0.113.77", "to_ids": True},
                {"type": "email-src", "value": "hr@subsidy-pay.example", "to_ids": True},
                {"type": "md5", "value": "d41d8cd98f00b204e9800998ecf8427e", "to_ids": True},
                {"type": "domain", "value": "google.com", "to_ids": False},
            ],
            "Object": [{"name": "file", "Attribute": [{"type": "filename|sha256", "value": f"invoice.html|{SHA}", "to_ids": True}]}],
        }
    }
    p = _write(tmp_path / "misp-event.json", json.dumps(event))
    got = [(i.kind, i.value) for i in load_file(p)]
    assert got == [
        ("domain", "subsidy-pay.example"), ("url", "https://subsidy-pay.example/scan"), ("ip", "203.0.113.77"),
        ("sender", "hr@subsidy-pay.example"), ("sha256", SHA),
    ]  # fmt: skip
    assert load_file(p)[0].source == "Salary subsidy phishing wave"
    # A REST search response with several events works too.
    p2 = _write(tmp_path / "misp-search.json", json.dumps({"response": [event, event]}))
    assert len(load_file(p2)) == 10


def test_stix_bundle(tmp_path: Path) -> None:
    def ind(pattern: str, **kw: object) -> dict[str, object]:
        return {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{abs(hash(pattern))}", "name": "wave", "pattern": pattern, "pattern_type": "stix", **kw}

    bundle = {
        "type": "bundle",
        "id": "bundle--1",
        "objects": [
            ind("[domain-name:value = 'stix-evil.example']"),
            ind("[url:value = 'http://stix-evil.example/a'] OR [ipv4-addr:value = '198.51.100.0/25']"),
            ind(f"[file:hashes.'SHA-256' = '{SHA2}']"),
            ind("[email-addr:value = 'boss@stix-evil.example']"),
            ind("[domain-name:value = 'revoked.example']", revoked=True),
            ind("[domain-name:value = 'expired.example']", valid_until="2020-01-01T00:00:00Z"),
            {"type": "domain-name", "id": "domain-name--x", "value": "observable-only.example"},
        ],
    }
    p = _write(tmp_path / "bundle.json", json.dumps(bundle))
    assert sorted((i.kind, i.value) for i in load_file(p)) == [
        ("domain", "stix-evil.example"), ("ip", "198.51.100.0/25"), ("sender", "boss@stix-evil.example"),
        ("sha256", SHA2), ("url", "http://stix-evil.example/a"),
    ]  # fmt: skip


def test_index_matching(tmp_path: Path) -> None:
    _write(tmp_path / "domains.txt", "evil.example\n")
    _write(tmp_path / "urls.txt", "https://Phish.Example/Login/\nhttp://site.example/\n")
    _write(tmp_path / "senders.txt", "ceo@fake.example\n@spam-domain.example\n")
    _write(tmp_path / "ips.txt", "203.0.113.0/24\n2001:db8::1\n")
    _write(tmp_path / "hashes.txt", SHA + "\n")
    idx = IntelIndex([str(tmp_path)])
    assert idx.counts == {"domain": 1, "url": 2, "sender": 2, "ip": 2, "sha256": 1}
    d = idx.match_domain("login.secure.evil.example")
    assert d is not None and d.value == "evil.example"
    assert idx.match_domain("notevil.example") is None and idx.match_domain("example") is None
    assert idx.match_url("https://phish.example/Login/#frag") is not None  # host case and fragment do not matter
    assert idx.match_url("https://phish.example/login/") is None  # the path does
    assert idx.match_url("https://site.example") is not None  # bare "/" and http/https
    assert idx.match_sender("CEO@fake.example") is not None and idx.match_sender("x@mail.spam-domain.example") is not None
    assert idx.match_sender("ceo@real.example") is None
    assert idx.match_ip("203.0.113.200") is not None and idx.match_ip("2001:db8:0::1") is not None and idx.match_ip("203.0.114.1") is None
    assert idx.match_hash(SHA.upper()) is not None


def test_a_listed_url_on_a_shared_host_matches_its_page(tmp_path: Path) -> None:
    # A feed lists one file of an attacker's storage bucket and one view of a form; the mail links
    # another file of that bucket, another view of the form. The platform's other pages are not theirs.
    _write(tmp_path / "urls.txt", "https://storage.googleapis.com/newera1/index.html\nhttps://forms.gle/Xy7Q2\n")
    idx = IntelIndex([str(tmp_path)])
    hit = idx.match_page("https://storage.googleapis.com/newera1/u/8f3a.html#wang@acme-corp.cn")
    assert hit is not None and hit.value == "https://storage.googleapis.com/newera1/index.html"
    assert idx.match_page("https://forms.gle/Xy7Q2?ref=mail") is not None
    assert idx.match_page("https://storage.googleapis.com/somebody-else/index.html") is None
    assert idx.match_page("https://forms.gle/xy7q2") is None  # a form id keeps its case
    assert idx.match_page("https://phish.example/index.html") is None


async def test_analyzer_says_when_a_link_matched_by_its_page(analyzer: IntelAnalyzer, tmp_path: Path) -> None:
    assert analyzer.index is not None
    analyzer.index.check_interval = 0
    _bump(tmp_path / "intel" / "urls.txt", "https://docs.google.com/forms/d/e/1FAIpQLSfX/viewform\n")
    got = await _scan(analyzer, simple("a@fine.example"), urls=[url("https://docs.google.com/forms/d/e/1FAIpQLSfX/formResponse")])
    f = got["INTEL_URL"]
    assert f.evidence.startswith("link https://docs.google.com/forms/d/e/1FAIpQLSfX/formResponse (the page of a listed URL) is listed")
    assert f.score >= Settings().policy.thresholds.quarantine
    assert await _scan(analyzer, simple("a@fine.example"), urls=[url("https://docs.google.com/forms/d/e/Other/viewform")]) == {}


def _bump(path: Path, text: str) -> None:
    st = path.stat()
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))  # a new mtime even on coarse clocks


def test_hot_reload(tmp_path: Path) -> None:
    lists = tmp_path / "lists"
    lists.mkdir()
    f = _write(lists / "domains.txt", "one.example\n")
    idx = IntelIndex([str(lists)], check_interval=0)
    assert idx.match_domain("one.example") is not None
    _bump(f, "two.example\n")
    assert idx.refresh() is True
    assert idx.match_domain("one.example") is None and idx.match_domain("two.example") is not None
    assert idx.refresh() is False  # nothing changed: nothing reloaded
    # A new file appears, a broken JSON keeps its last good content, a deleted file's entries go.
    j = _write(lists / "feed.json", json.dumps({"type": "bundle", "objects": [{"type": "indicator", "pattern": "[domain-name:value = 'three.example']"}]}))
    idx.refresh()
    assert idx.match_domain("three.example") is not None
    _bump(j, '{"type": "bundle", "objects": [')
    idx.refresh()
    assert idx.match_domain("three.example") is not None and str(j) in idx.errors
    # Emptied before being written again (`> domains.txt`, a downloader): the list stays until it
    # holds entries again; only removing the file drops them.
    _bump(f, "")
    idx.refresh()
    assert idx.match_domain("two.example") is not None and "is empty" in idx.errors[str(f)]
    _bump(f, "two.example\nfour.example\n")
    idx.refresh()
    assert idx.match_domain("four.example") is not None and str(f) not in idx.errors
    f.unlink()
    idx.refresh()
    assert idx.match_domain("two.example") is None


def test_reload_checks_files_at_most_once_per_interval(tmp_path: Path) -> None:
    f = _write(tmp_path / "domains.txt", "one.example\n")
    idx = IntelIndex([str(tmp_path)], check_interval=3600)
    _bump(f, "two.example\n")
    assert idx.refresh() is False and idx.match_domain("one.example") is not None
    assert idx.refresh(force=True) is True and idx.match_domain("two.example") is not None


@pytest.fixture
def analyzer(tmp_path: Path) -> IntelAnalyzer:
    d = tmp_path / "intel"
    d.mkdir()
    _write(d / "phish-domains.txt", "# wave 42\nsubsidy-pay.example\n")
    _write(d / "urls.txt", "https://cdn.files.example/invoice.html\n")
    _write(d / "senders.txt", "payroll@mailer.example\n")
    _write(d / "ips.csv", "kind,value,source\nip,203.0.113.77,blocklist\n")
    _write(d / "hashes.txt", SHA + "\n")
    s = Settings()
    s.intel.dirs = [str(d)]
    return IntelAnalyzer(AnalyzerEnv(settings=s))


async def _scan(an: IntelAnalyzer, raw: bytes, **kw: object) -> dict[str, Finding]:
    msg = message(raw, urls=list(kw.pop("urls", [])))  # type: ignore[call-overload]
    for k, v in kw.items():
        setattr(msg, k, v)
    env = Envelope(mail_from="bounce@other.example", rcpt_tos=["s@example.com"], peer_ip="192.0.2.1")
    return {f.symbol: f for f in await an.analyze(AnalysisContext(message=msg, envelope=env, settings=an.env.settings))}


async def test_analyzer_matches_with_evidence(analyzer: IntelAnalyzer) -> None:
    got = await _scan(
        analyzer,
        simple("Payroll <payroll@mailer.example>"),
        urls=[url("https://www.subsidy-pay.example/scan?id=1", source="qr"), url("https://cdn.files.example/invoice.html")],
        received=[ReceivedHop(raw="from x", ip="203.0.113.77", from_host="bad.host")],
        parts=[Part(path="2", content_type="text/html", filename="invoice.html", sha256=SHA, is_attachment=True)],
    )
    dom_f = got["INTEL_DOMAIN"]
    assert "phish-domains.txt line 2" in dom_f.evidence and "subsidy-pay.example" in dom_f.evidence
    assert got["QR_URL_LISTED"].data["url"].startswith("https://www.subsidy-pay.example/")
    assert "urls.txt line 1" in got["INTEL_URL"].evidence
    assert "payroll@mailer.example" in got["INTEL_SENDER"].evidence
    assert "203.0.113.77" in got["INTEL_IP"].evidence and "(blocklist)" in got["INTEL_IP"].evidence
    assert "invoice.html" in got["INTEL_HASH"].evidence
    for sym in ("INTEL_DOMAIN", "INTEL_URL", "INTEL_SENDER", "INTEL_IP", "INTEL_HASH"):
        assert got[sym].score >= Settings().policy.thresholds.quarantine


async def test_analyzer_clean_message_and_console_added_indicators(analyzer: IntelAnalyzer, tmp_path: Path) -> None:
    assert await _scan(analyzer, simple("a@fine.example"), urls=[url("https://fine.example/")]) == {}
    # With no lists configured it still watches <data_dir>/intel, where the console and API write.
    settings = Settings()
    settings.data_dir = str(tmp_path / "var")
    bare = IntelAnalyzer(AnalyzerEnv(settings=settings))
    assert bare.enabled() and bare.index is not None
    bare.index.check_interval = 0
    assert await _scan(bare, simple("a@fine.example"), urls=[url("https://added-later.example/x")]) == {}
    (tmp_path / "var" / "intel").mkdir(parents=True)
    (tmp_path / "var" / "intel" / "domain.txt").write_text("added-later.example\n", encoding="utf-8")
    got = await _scan(bare, simple("a@fine.example"), urls=[url("https://added-later.example/x")])
    assert "INTEL_DOMAIN" in got or "INTEL_URL" in got, got


async def test_listed_domain_behind_redirect_and_sender_domain(analyzer: IntelAnalyzer) -> None:
    got = await _scan(analyzer, simple("x@mail.subsidy-pay.example"), urls=[url("https://www.google.com/url?q=https://subsidy-pay.example/a")])
    ev = " ".join(f.evidence for f in got.values())
    assert "redirect target" in ev and "From domain of x@mail.subsidy-pay.example" in ev


async def test_analyzer_picks_up_a_changed_list(analyzer: IntelAnalyzer, tmp_path: Path) -> None:
    assert analyzer.index is not None
    analyzer.index.check_interval = 0
    raw = simple("a@fine.example")
    assert await _scan(analyzer, raw, urls=[url("https://new-wave.example/x")]) == {}
    _bump(tmp_path / "intel" / "phish-domains.txt", "subsidy-pay.example\nnew-wave.example\n")
    got = await _scan(analyzer, raw, urls=[url("https://new-wave.example/x")])
    assert "phish-domains.txt line 2" in got["INTEL_DOMAIN"].evidence
