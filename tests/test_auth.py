"""SPF, DKIM, DMARC and ARC against a DNS server started on loopback by the test."""

from __future__ import annotations

from collections.abc import Iterator

import dkim
import pytest

from mailmoat.analyzers.auth import AuthAnalyzer
from mailmoat.analyzers.base import AnalysisContext, AnalyzerEnv
from mailmoat.config import DnsSettings, Settings
from mailmoat.deliver.headers import authentication_results
from mailmoat.model import Direction, Envelope, Finding, ReceivedHop
from tests.support.detmsg import message, simple
from tests.support.dnsserver import DkimKey, LoopbackDns, Zone, dns_server, new_dkim_key, silent_dns

CLIENT = "192.0.2.10"
OTHER = "198.51.100.7"


@pytest.fixture(scope="module")
def key() -> DkimKey:
    return new_dkim_key()


@pytest.fixture(scope="module")
def dns(key: DkimKey) -> Iterator[LoopbackDns]:
    z = Zone()
    z.txt("pass.test", f"v=spf1 ip4:{CLIENT} -all")
    z.txt("soft.test", f"v=spf1 ip4:{CLIENT} ~all")
    z.txt("neutral.test", "v=spf1 ?all")
    z.add("nospf.test", "A", "192.0.2.99")
    z.txt("inc.test", "v=spf1 include:pass.test -all")
    z.txt("broken.test", "v=spf1 ip4:not-an-ip -all")
    # A signing domain with DKIM key and a strict DMARC policy.
    z.txt("bank.test", f"v=spf1 ip4:{CLIENT} -all")
    z.txt("sel._domainkey.bank.test", key.record)
    z.txt("_dmarc.bank.test", "v=DMARC1; p=reject; rua=mailto:d@bank.test")
    z.txt("_dmarc.quar.test", "v=DMARC1; p=quarantine")
    z.txt("quar.test", f"v=spf1 ip4:{CLIENT} -all")
    z.txt("_dmarc.parent.test", "v=DMARC1; p=none; sp=reject")
    z.txt("sub.parent.test", "v=spf1 -all")
    # A third-party signer (an ESP) and a forwarder that seals ARC.
    z.txt("esp.test", f"v=spf1 ip4:{OTHER} -all")
    z.txt("sel._domainkey.esp.test", key.record)
    z.txt("arc._domainkey.fwd.test", key.record)
    with dns_server(z) as server:
        yield server


def _analyzer(dns_settings: DnsSettings, **kw: object) -> AuthAnalyzer:
    s = Settings()
    s.dns = dns_settings
    for k, v in kw.items():
        setattr(s.auth, k, v)
    return AuthAnalyzer(AnalyzerEnv(settings=s))


async def _run(an: AuthAnalyzer, raw: bytes, mail_from: str, ip: str = CLIENT, helo: str = "mx.test", **env: object) -> dict[str, Finding]:
    msg = message(raw)
    envelope = Envelope(mail_from=mail_from, rcpt_tos=["staff@example.com"], peer_ip=ip, helo=helo)
    for k, v in env.items():
        setattr(envelope, k, v)
    ctx = AnalysisContext(message=msg, envelope=envelope, settings=an.env.settings)
    findings = await an.analyze(ctx)
    return {f.symbol: f for f in findings}


def _sign(raw: bytes, key: DkimKey, domain: str, selector: str = "sel") -> bytes:
    sig = dkim.sign(raw, selector.encode(), domain.encode(), key.private_pem, include_headers=[b"from", b"to", b"subject", b"date"])
    return bytes(sig) + raw


@pytest.mark.parametrize(
    ("domain", "ip", "symbol"),
    [
        ("pass.test", CLIENT, "SPF_PASS"),
        ("pass.test", OTHER, "SPF_FAIL"),
        ("soft.test", OTHER, "SPF_SOFTFAIL"),
        ("neutral.test", OTHER, "SPF_NEUTRAL"),
        ("nospf.test", OTHER, "SPF_NONE"),
        ("inc.test", CLIENT, "SPF_PASS"),
        ("broken.test", CLIENT, "SPF_PERMERROR"),
    ],
)
async def test_spf_results(dns: LoopbackDns, domain: str, ip: str, symbol: str) -> None:
    an = _analyzer(dns.settings())
    got = await _run(an, simple(f"a@{domain}"), f"bounce@{domain}", ip=ip)
    assert symbol in got, got.keys()
    ar = got[symbol].data["authres"]
    assert ar["method"] == "spf"
    assert ar["result"] == symbol.removeprefix("SPF_").lower()
    assert ar["props"] == {"smtp.mailfrom": f"bounce@{domain}"}
    assert ip in got[symbol].evidence


async def test_spf_fail_shows_the_record(dns: LoopbackDns) -> None:
    got = await _run(_analyzer(dns.settings()), simple("a@pass.test"), "x@pass.test", ip=OTHER)
    assert f"v=spf1 ip4:{CLIENT} -all" in got["SPF_FAIL"].evidence
    assert got["SPF_FAIL"].score > 0


async def test_spf_null_sender_uses_helo(dns: LoopbackDns) -> None:
    got = await _run(_analyzer(dns.settings()), simple("a@pass.test"), "", ip=CLIENT, helo="pass.test")
    assert got["SPF_PASS"].data["authres"]["props"] == {"smtp.helo": "pass.test"}


async def test_dkim_good_signature_and_dmarc_pass(dns: LoopbackDns, key: DkimKey) -> None:
    raw = _sign(simple("Bank <alerts@bank.test>", "Statement"), key, "bank.test")
    got = await _run(_analyzer(dns.settings()), raw, "bounce@bank.test", ip=OTHER)  # SPF fails, DKIM aligns
    assert got["DKIM_PASS"].data["authres"] == {"method": "dkim", "result": "pass", "props": {"header.d": "bank.test", "header.s": "sel"}}
    assert "SPF_FAIL" in got
    assert got["DMARC_PASS"].data["authres"]["result"] == "pass"
    assert got["DMARC_PASS"].score < 0


async def test_dkim_body_hash_mismatch(dns: LoopbackDns, key: DkimKey) -> None:
    raw = _sign(simple("Bank <alerts@bank.test>", "Statement", body="Pay 10 EUR.\n"), key, "bank.test")
    tampered = raw.replace(b"Pay 10 EUR.", b"Pay 9999 EUR")
    got = await _run(_analyzer(dns.settings()), tampered, "bounce@bank.test", ip=CLIENT)
    assert got["DKIM_FAIL"].data["authres"]["result"] == "fail"
    assert "body hash" in got["DKIM_FAIL"].evidence
    # SPF still passes and is aligned, so DMARC passes.
    assert "DMARC_PASS" in got


async def test_dkim_missing_key_is_permerror(dns: LoopbackDns, key: DkimKey) -> None:
    raw = _sign(simple("x@pass.test"), key, "pass.test", selector="gone")
    got = await _run(_analyzer(dns.settings()), raw, "x@pass.test")
    assert got["DKIM_PERMERROR"].data["authres"]["result"] == "permerror"


async def test_no_signature_is_dkim_none(dns: LoopbackDns) -> None:
    got = await _run(_analyzer(dns.settings()), simple("a@pass.test"), "a@pass.test")
    assert got["DKIM_NONE"].data["authres"]["result"] == "none"


async def test_dmarc_reject_spoofed_from(dns: LoopbackDns, key: DkimKey) -> None:
    # Mail claims to be from bank.test, comes from another IP, signed only by the ESP domain.
    raw = _sign(simple("Bank Security <security@bank.test>", "Verify your account"), key, "esp.test")
    got = await _run(_analyzer(dns.settings()), raw, "bounce@esp.test", ip=OTHER)
    assert "SPF_PASS" in got and "DKIM_PASS" in got  # authenticated, but as esp.test
    f = got["DMARC_REJECT"]
    assert f.score >= Settings().policy.thresholds.quarantine
    ar = f.data["authres"]
    assert (ar["method"], ar["result"], ar["props"]) == ("dmarc", "fail", {"header.from": "bank.test", "policy.dmarc": "reject"})
    assert "not aligned" in ar["reason"]
    # The delivery code turns these into one RFC 8601 header.
    header = authentication_results("mx.example.com", got.values())
    assert "dmarc=fail reason=" in header and "header.from=bank.test" in header and "spf=pass smtp.mailfrom=bounce@esp.test" in header
    assert "not aligned" in f.evidence and "unaligned d=esp.test" in f.evidence and "p=reject" in f.evidence


async def test_dmarc_quarantine_and_subdomain_policy(dns: LoopbackDns) -> None:
    got = await _run(_analyzer(dns.settings()), simple("x@quar.test"), "x@quar.test", ip=OTHER)
    assert "DMARC_QUARANTINE" in got
    got = await _run(_analyzer(dns.settings()), simple("x@sub.parent.test"), "x@sub.parent.test", ip=OTHER)
    assert got["DMARC_REJECT"].data["policy"] == "reject"  # sp=reject of the organisational domain


async def test_dmarc_none_when_no_record(dns: LoopbackDns) -> None:
    got = await _run(_analyzer(dns.settings()), simple("a@pass.test"), "a@pass.test")
    assert got["DMARC_NONE"].data["authres"]["result"] == "none"


def _arc_seal(raw: bytes, key: DkimKey, results: str) -> bytes:
    with_ar = f"Authentication-Results: fwd.test; {results}\r\n".encode() + raw
    headers = dkim.arc_sign(with_ar, b"arc", b"fwd.test", key.private_pem, b"fwd.test")
    return b"".join(headers) + with_ar


async def test_arc_pass_and_trusted_sealer_excuses_dmarc(dns: LoopbackDns, key: DkimKey) -> None:
    original = _sign(simple("Bank <alerts@bank.test>", "Statement", body="Balance.\n"), key, "bank.test")
    # The forwarder (a mailing list) changes the body, breaking DKIM, then seals what it saw.
    forwarded = original.replace(b"Balance.", b"Balance.\r\n-- \r\nlist footer")
    sealed = _arc_seal(forwarded, key, "dkim=pass header.d=bank.test; spf=pass smtp.mailfrom=bank.test; dmarc=pass")
    got = await _run(_analyzer(dns.settings()), sealed, "list-bounce@esp.test", ip=OTHER)
    assert got["ARC_PASS"].data["authres"]["result"] == "pass"
    assert got["DMARC_REJECT"].score == 10.0  # not trusted: the policy stands
    got = await _run(_analyzer(dns.settings(), trusted_arc_sealers=["fwd.test"]), sealed, "list-bounce@esp.test", ip=OTHER)
    assert got["DMARC_REJECT"].score < 1.0
    assert "trusted fwd.test" in got["DMARC_REJECT"].evidence


async def test_arc_broken_chain(dns: LoopbackDns, key: DkimKey) -> None:
    sealed = _arc_seal(simple("a@pass.test"), key, "spf=pass smtp.mailfrom=pass.test")
    broken = sealed.replace(b"Subject: Hello", b"Subject: Changed")
    got = await _run(_analyzer(dns.settings()), broken, "a@pass.test")
    assert got["ARC_FAIL"].data["authres"]["result"] == "fail"


async def test_no_dns_configured_is_not_checked() -> None:
    an = _analyzer(DnsSettings())
    got = await _run(an, simple("a@pass.test"), "a@pass.test")
    assert list(got) == ["AUTH_NOT_CHECKED"]
    assert got["AUTH_NOT_CHECKED"].score == 0
    assert "authres" not in got["AUTH_NOT_CHECKED"].data


async def test_dns_timeout_is_temperror_not_crash() -> None:
    with silent_dns() as port:
        an = _analyzer(DnsSettings(nameservers=["127.0.0.1"], port=port, timeout=0.3))
        got = await _run(an, simple("a@pass.test"), "a@pass.test")
    assert got["SPF_TEMPERROR"].score == 0
    assert got["DMARC_TEMPERROR"].data["authres"]["result"] == "temperror"


async def test_internal_mail_is_not_checked(dns: LoopbackDns) -> None:
    got = await _run(_analyzer(dns.settings()), simple("a@pass.test"), "a@pass.test", ip=OTHER, direction=Direction.INTERNAL)
    assert list(got) == ["AUTH_INTERNAL"]


async def test_relay_network_client_uses_the_outside_hop(dns: LoopbackDns) -> None:
    an = _analyzer(dns.settings())
    msg = message(simple("a@pass.test"))
    msg.received = [
        ReceivedHop(raw="from mx.internal ([10.0.0.5])", ip="10.0.0.5", helo="mx.internal"),
        ReceivedHop(raw=f"from mail.pass.test ([{CLIENT}])", ip=CLIENT, helo="mail.pass.test"),
    ]
    env = Envelope(mail_from="a@pass.test", rcpt_tos=["s@example.com"], peer_ip="127.0.0.1", helo="localhost")
    findings = await an.analyze(AnalysisContext(message=msg, envelope=env, settings=an.env.settings))
    got = {f.symbol: f for f in findings}
    assert CLIENT in got["SPF_PASS"].evidence
    # Without any outside hop there is nothing to check.
    msg.received = []
    findings = await an.analyze(AnalysisContext(message=msg, envelope=env, settings=an.env.settings))
    assert [f.symbol for f in findings] == ["AUTH_INTERNAL"]
