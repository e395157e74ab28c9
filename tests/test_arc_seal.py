"""ARC sealing: the copy handed on carries an ARC set over the gateway's results that verifies after the banner broke the sender's DKIM."""

from __future__ import annotations

import asyncio
import re
import smtplib
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import dkim
import dns.resolver
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from mailmoat import metrics
from mailmoat.check import arc_seal as arc_check
from mailmoat.config import ArcSealSettings, ConfigError, DnsSettings, Settings
from mailmoat.deliver.arc_seal import load_key
from tests.support.dnsserver import DkimKey, LoopbackDns, Zone, dns_server, new_dkim_key
from tests.support.gateway import inprocess_gateway, maildir_copies, wait_for

ORG = "victim-corp.com"
RCPT = f"staff@{ORG}"
GATEWAY = "mx.victim-corp.com"


@pytest.fixture(scope="module")
def sender_key() -> DkimKey:
    return new_dkim_key()


@pytest.fixture(scope="module")
def seal_key() -> DkimKey:
    return new_dkim_key(2048)


@pytest.fixture(scope="module")
def zone(sender_key: DkimKey, seal_key: DkimKey) -> Iterator[LoopbackDns]:
    z = Zone()
    z.txt("bank.test", "v=spf1 ip4:127.0.0.1 -all")
    z.txt("sel._domainkey.bank.test", sender_key.record)
    z.txt("_dmarc.bank.test", "v=DMARC1; p=reject")
    z.txt("arc._domainkey.fwd.test", sender_key.record)  # a forwarder that sealed before us
    z.txt(f"gw._domainkey.{ORG}", seal_key.record)
    z.txt("other._domainkey.victim-corp.com", sender_key.record)
    with dns_server(z) as server:
        yield server


def dnsfunc(server: LoopbackDns) -> Any:
    """dkimpy's TXT lookup, against the loopback server (as a receiver behind the gateway would ask)."""
    r = dns.resolver.Resolver(configure=False)
    r.nameservers, r.port = ["127.0.0.1"], server.port

    def txt(name: bytes, timeout: int = 5) -> bytes:
        answer = r.resolve(name.decode().rstrip("."), "TXT", lifetime=timeout)
        return b"".join(b"".join(rd.strings) for rd in answer)

    return txt


def seal_settings(settings: Settings, tmp_path: Path, key: DkimKey, server: LoopbackDns | None) -> Settings:
    key_file = tmp_path / "arc.pem"
    key_file.write_bytes(key.private_pem)
    settings.server.hostname = GATEWAY
    settings.server.domains = [ORG]
    settings.server.relay_networks = []  # the test's client on 127.0.0.1 is the sender's server
    settings.server.workers = 0
    if server is not None:
        settings.dns = server.settings()
    settings.banner.enabled = settings.banner.external = True  # the body changes on the way
    settings.arc_seal = ArcSealSettings(enabled=True, domain=ORG, selector="gw", key_file=str(key_file))
    return settings


def statement(key: DkimKey) -> bytes:
    m = EmailMessage()
    m["From"] = "Bank <alerts@bank.test>"
    m["To"] = RCPT
    m["Subject"] = "Your monthly statement"
    m["Message-ID"] = "<stmt-1@bank.test>"
    m["Date"] = "Tue, 18 Nov 2025 09:30:00 +0000"
    m.set_content("Your statement for November is ready in online banking.\n")
    raw = m.as_bytes().replace(b"\n", b"\r\n")
    sig = dkim.sign(raw, b"sel", b"bank.test", key.private_pem, include_headers=[b"from", b"to", b"subject", b"message-id"])
    return sig + raw


def through_the_gateway(settings: Settings, raw: bytes, mail_from: str = "alerts@bank.test") -> bytes:
    with inprocess_gateway(settings) as gw:
        with smtplib.SMTP(gw.host, gw.port, timeout=30) as c:
            c.sendmail(mail_from, [RCPT], raw)
        copies = wait_for(lambda: maildir_copies(settings.mail_dir, RCPT), what="the delivered copy")
    ((path,),) = copies.values()
    return path.read_bytes()


def test_the_seal_verifies_after_the_banner_broke_dkim(settings: Settings, tmp_path: Path, zone: LoopbackDns,
                                                       sender_key: DkimKey, seal_key: DkimKey) -> None:
    sealed_before = metrics.ARC_SEALS.labels(result="sealed")._value.get()
    copy = through_the_gateway(seal_settings(settings, tmp_path, seal_key, zone), statement(sender_key))
    assert b"comes from outside" in copy  # the banner's notice: the body is not the one the bank signed
    assert not dkim.verify(copy, dnsfunc=dnsfunc(zone))
    cv, results, reason = dkim.arc_verify(copy, dnsfunc=dnsfunc(zone))
    assert cv == dkim.CV_Pass, reason
    assert [r["instance"] for r in results] == [1]
    head = copy.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].decode()
    aar = next(line for line in re.sub(r"\n[ \t]+", " ", head).splitlines() if line.startswith("ARC-Authentication-Results:"))
    assert f"i=1; {GATEWAY};" in aar and "dkim=pass" in aar and "dmarc=pass" in aar and "spf=pass" in aar
    assert f"d={ORG}" in head and "s=gw" in head
    # Each copy's tracking header goes on top, outside the seal.
    assert head.index("X-Mailmoat-Id:") < head.index("ARC-Seal:")
    assert metrics.ARC_SEALS.labels(result="sealed")._value.get() == sealed_before + 1


def test_a_verified_chain_is_continued(settings: Settings, tmp_path: Path, zone: LoopbackDns,
                                       sender_key: DkimKey, seal_key: DkimKey) -> None:
    # A forwarder changed the body (a list footer) and sealed what it saw, as instance 1.
    forwarded = statement(sender_key).replace(b"online banking.", b"online banking.\r\n-- \r\nlist footer")
    with_ar = b"Authentication-Results: fwd.test; dkim=pass header.d=bank.test; dmarc=pass\r\n" + forwarded
    upstream = b"".join(dkim.arc_sign(with_ar, b"arc", b"fwd.test", sender_key.private_pem, b"fwd.test")) + with_ar
    settings.auth.trusted_arc_sealers = ["fwd.test"]
    copy = through_the_gateway(seal_settings(settings, tmp_path, seal_key, zone), upstream, "list-bounce@fwd.test")
    cv, results, reason = dkim.arc_verify(copy, dnsfunc=dnsfunc(zone))
    assert cv == dkim.CV_Pass, reason
    assert [r["instance"] for r in results] == [2, 1]
    head = re.sub(r"\n[ \t]+", " ", copy.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].decode())
    (ours,) = [line for line in head.splitlines() if line.startswith("ARC-Authentication-Results: i=2;")]
    assert "arc=pass" in ours  # our results say the chain verified


def test_a_chain_the_gateway_could_not_verify_is_not_continued(settings: Settings, tmp_path: Path,
                                                               sender_key: DkimKey, seal_key: DkimKey) -> None:
    with_ar = b"Authentication-Results: fwd.test; dkim=pass\r\n" + statement(sender_key)
    upstream = b"".join(dkim.arc_sign(with_ar, b"arc", b"fwd.test", sender_key.private_pem, b"fwd.test")) + with_ar
    left_out = metrics.ARC_SEALS.labels(result="left_out")._value.get()
    # No DNS: nothing verified, so no arc= result to seal (RFC 8617: cv=none only on instance 1).
    copy = through_the_gateway(seal_settings(settings, tmp_path, seal_key, None), upstream)
    assert copy.count(b"ARC-Seal:") == 1 and b"ARC-Seal: i=2" not in copy
    assert metrics.ARC_SEALS.labels(result="left_out")._value.get() == left_out + 1


def test_openssl_makes_the_same_signature_as_dkimpy(seal_key: DkimKey) -> None:
    import hashlib

    import dkim.crypto

    from mailmoat.deliver.arc_seal import _rsa_sign

    pk = dkim.crypto.parse_pem_private_key(seal_key.private_pem)
    for algo in ("sha256", "sha1"):
        digest = hashlib.new(algo, b"ARC-Seal: i=1; a=rsa-sha256; cv=none")
        assert _rsa_sign(digest, pk) == dkim.crypto.RSASSA_PKCS1_v1_5_sign(digest, pk)


def test_mail_without_a_from_goes_on_unsealed(tmp_path: Path, seal_key: DkimKey) -> None:
    from mailmoat.deliver.arc_seal import Sealer

    key_file = tmp_path / "arc.pem"
    key_file.write_bytes(seal_key.private_pem)
    sealer = Sealer(ArcSealSettings(enabled=True, domain=ORG, selector="gw", key_file=str(key_file)), GATEWAY)
    left_out = metrics.ARC_SEALS.labels(result="left_out")._value.get()
    raw = f"Authentication-Results: {GATEWAY}; none\r\nTo: {RCPT}\r\nSubject: no sender\r\n\r\nhi\r\n".encode()
    assert sealer.seal(raw) == raw
    assert metrics.ARC_SEALS.labels(result="left_out")._value.get() == left_out + 1
    errors = metrics.ARC_SEALS.labels(result="error")._value.get()
    broken = b"From: a@b.example\r\n\x00\x01garbage line\r\n\r\nhi\r\n"
    assert sealer.seal(broken) == broken
    assert metrics.ARC_SEALS.labels(result="error")._value.get() == errors + 1


def test_keys_that_would_not_serve(tmp_path: Path) -> None:
    weak = tmp_path / "weak.pem"
    weak.write_bytes(new_dkim_key(1024).private_pem)
    with pytest.raises(ConfigError, match="1024-bit RSA; use 2048"):
        load_key(str(weak))
    pkcs8 = tmp_path / "pkcs8.pem"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pkcs8.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    assert load_key(str(pkcs8)).startswith(b"-----BEGIN RSA PRIVATE KEY-----")  # openssl genpkey's form, read
    ecdsa = tmp_path / "ec.pem"
    ecdsa.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with pytest.raises(ConfigError, match="an RSA key is needed"):
        load_key(str(ecdsa))
    with pytest.raises(ConfigError, match=r"missing\.pem: No such file"):
        load_key(str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match="needs domain, selector and key_file"):
        ArcSealSettings(enabled=True, domain=ORG)
    # `mailmoat serve` says so before it listens, not from a worker after it took mail.
    from mailmoat.cli.serve import check as before_serving

    s = Settings()
    s.arc_seal = ArcSealSettings(enabled=True, domain=ORG, selector="gw", key_file=str(weak))
    with pytest.raises(ConfigError, match="1024-bit RSA"):
        before_serving(s)


def test_check_compares_the_published_key(settings: Settings, tmp_path: Path, zone: LoopbackDns, seal_key: DkimKey) -> None:
    seal_settings(settings, tmp_path, seal_key, zone)
    got = asyncio.run(arc_check(settings))
    assert got is not None and got.state == "ok" and f"gw._domainkey.{ORG} publishes the key" in got.detail
    settings.arc_seal.selector = "other"  # a record with another key
    got = asyncio.run(arc_check(settings))
    assert got is not None and got.state == "fail" and "another key" in got.detail
    settings.arc_seal.selector = "nothing"
    got = asyncio.run(arc_check(settings))
    assert got is not None and got.state == "fail" and "publishes no DKIM key" in got.detail
    settings.dns = DnsSettings()
    got = asyncio.run(arc_check(settings))
    assert got is not None and got.state == "warn" and "not looked up" in got.detail
    settings.arc_seal.key_file = str(tmp_path / "gone.pem")
    got = asyncio.run(arc_check(settings))
    assert got is not None and got.state == "fail"
    settings.arc_seal.enabled = False
    assert asyncio.run(arc_check(settings)) is None
