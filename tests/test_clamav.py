"""ClamAV through a real clamd (started here on loopback with our own signatures) and clamd being down."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mailmoat.analyzers.clamav import ClamavAnalyzer
from mailmoat.attach.clamd import instream, ping
from mailmoat.config import Settings
from tests.support import attachgen as g
from tests.support import clamd as clamd_support
from tests.support.net import free_port

pytestmark = [
    pytest.mark.clamav,
    pytest.mark.skipif(not clamd_support.available(), reason="Debian's clamav-daemon is not installed"),
]


@pytest.fixture(scope="module")
def clamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[clamd_support.Clamd]:
    with clamd_support.running(tmp_path_factory.mktemp("clamd")) as daemon:
        yield daemon


def _settings(settings: Settings, address: str, on_failure: str = "score", scan: str = "attachments") -> Settings:
    settings.attachments.clamav.enabled = True
    settings.attachments.clamav.address = address
    settings.attachments.clamav.on_failure = on_failure
    settings.attachments.clamav.scan = scan
    settings.attachments.clamav.timeout = 10
    return settings


async def test_client_over_tcp_and_unix_socket(clamd: clamd_support.Clamd) -> None:
    for address in (clamd.tcp, clamd.unix):
        assert await ping(address, 5)
        hit = await instream(address, g.EICAR, 10)
        assert hit.infected and hit.signature.startswith("Mailmoat.Test.EICAR")
        clean = await instream(address, b"hello world" * 10_000, 10)  # several chunks
        assert not clean.infected


async def test_eicar_plain_zipped_double_zipped_and_custom_signature(clamd: clamd_support.Clamd, settings: Settings) -> None:
    _settings(settings, clamd.tcp)
    once = g.zip_bytes({"eicar.com": g.EICAR})
    msg = g.message([
        ("eicar.com", g.EICAR),
        ("one.zip", once),
        ("two.zip", g.zip_bytes({"inner.zip": once})),
        ("notes.txt", b"quarterly " + clamd_support.CUSTOM_MARKER + b" figures"),
        ("clean.txt", b"nothing here"),
    ])
    found = g.by_symbol(await g.run_analyzers(msg, settings, ClamavAnalyzer))
    virus = found["CLAMAV_VIRUS"]
    hits = {f["location"]: f["signature"] for f in virus.data["files"]}
    assert set(hits) == {"eicar.com", "one.zip", "two.zip", "notes.txt"}
    assert hits["notes.txt"].startswith("Mailmoat.Test.Custom")
    assert virus.score >= settings.policy.thresholds.quarantine


async def test_password_zip_member_is_scanned_after_decryption(clamd: clamd_support.Clamd, settings: Settings) -> None:
    _settings(settings, clamd.tcp)
    locked = g.aes_zip({"invoice.com": g.EICAR}, "1234")
    without = g.by_symbol(await g.run_analyzers(g.message([("inv.zip", locked)], text="hi"), settings, ClamavAnalyzer))
    assert "CLAMAV_VIRUS" not in without  # clamd alone cannot open it
    found = g.by_symbol(await g.run_analyzers(g.message([("inv.zip", locked)], text="Password: 1234"), settings, ClamavAnalyzer))
    assert [f["location"] for f in found["CLAMAV_VIRUS"].data["files"]] == ["inv.zip > invoice.com"]


async def test_raw_message_mode(clamd: clamd_support.Clamd, settings: Settings) -> None:
    _settings(settings, clamd.unix, scan="message")
    msg = g.message([])
    msg.raw = g.mime([("eicar.com", g.EICAR)])  # clamd decodes the MIME structure itself
    found = g.by_symbol(await g.run_analyzers(msg, settings, ClamavAnalyzer))
    assert found["CLAMAV_VIRUS"].data["files"][0]["location"] == "message"


@pytest.mark.parametrize("on_failure", ["score", "tempfail"])
async def test_clamd_down_is_never_a_silent_pass(settings: Settings, tmp_path: Path, on_failure: str) -> None:
    for address in (f"127.0.0.1:{free_port()}", str(tmp_path / "missing.sock")):
        _settings(settings, address, on_failure=on_failure)
        found = g.by_symbol(await g.run_analyzers(g.message([("eicar.com", g.EICAR)]), settings, ClamavAnalyzer))
        unavailable = found["CLAMAV_UNAVAILABLE"]
        assert unavailable.data["tempfail"] is (on_failure == "tempfail")
        assert unavailable.score > 0


def test_disabled_by_default(settings: Settings) -> None:
    from mailmoat.analyzers.base import AnalyzerEnv

    assert not ClamavAnalyzer(AnalyzerEnv(settings=settings)).enabled()


@pytest.mark.parametrize("on_failure", ["tempfail", "score"])
async def test_clamd_down_outcome_through_the_policy(settings: Settings, on_failure: str) -> None:
    """With clamd down, a plain message is deferred (tempfail) or scored, as configured — never silently passed."""
    from mailmoat.model import Envelope
    from mailmoat.scanner import Scanner

    _settings(settings, f"127.0.0.1:{free_port()}", on_failure=on_failure)
    raw = g.mime([("notes.txt", b"quarterly notes")])
    result = await Scanner(settings).scan(raw, Envelope("a@example.org", ["b@localhost"]))
    assert result.verdict.symbols["CLAMAV_UNAVAILABLE"] > 0
    assert (result.verdict.action.value == "tempfail") is (on_failure == "tempfail"), result.verdict.reasons
