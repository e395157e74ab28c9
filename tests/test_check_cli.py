"""`mailmoat check`: each thing the configuration names is tried against the real thing on loopback, or found missing."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from aiosmtpd.controller import Controller
from typer.testing import CliRunner

from mailmoat.cli import app
from mailmoat.config import Settings
from tests.support.dnsserver import Zone, dns_server, silent_dns
from tests.support.gateway import write_toml
from tests.support.net import free_port

runner = CliRunner()


def check(settings: Settings, tmp_path: Path, **sections: dict[str, object]) -> tuple[int, dict[str, tuple[str, str]]]:
    """Exit code and {check name: (state, detail)} for a configuration with these sections."""
    args = ["check", "--format", "json", "--data-dir", settings.data_dir]
    if sections:
        args += ["-c", str(write_toml(tmp_path / "mailmoat.toml", sections))]
    result = runner.invoke(app, args)
    return result.exit_code, {c["name"]: (c["state"], c["detail"]) for c in json.loads(result.output)}


def self_signed(tmp_path: Path, days: int, name: str = "cert") -> tuple[Path, Path]:
    cert, key = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-subj", "/CN=mx.victim-corp.com", "-days", str(days), "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


def test_a_fresh_install_works_and_says_what_it_lacks(settings: Settings, tmp_path: Path) -> None:
    code, got = check(settings, tmp_path)
    assert code == 0
    assert {k: v[0] for k, v in got.items()} == {
        "data dir": "ok", "database": "ok", "delivery": "ok", "DNS": "warn", "recall": "ok", "classifier": "warn",
    }
    assert "creates it on its first start" in got["database"][1] and "not checked" in got["DNS"][1]
    text = runner.invoke(app, ["check", "--data-dir", settings.data_dir]).output
    assert "WARN  classifier: no model" in text and "ok    delivery: into the embedded Maildir store" in text


def test_the_mail_system_answers_or_not(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    code, got = check(settings, tmp_path, delivery={"relay_to": f"smtp://127.0.0.1:{port}", "connect_timeout": 2.0})
    assert code == 1 and got["delivery"][0] == "fail" and f"smtp://127.0.0.1:{port} does not answer" in got["delivery"][1]

    class Sink:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            return "250 OK"

    ctl = Controller(Sink(), hostname="127.0.0.1", port=port, server_hostname="mail.victim-corp.com")
    ctl.start()
    try:
        code, got = check(settings, tmp_path, delivery={"relay_to": f"smtp://127.0.0.1:{port}"})
    finally:
        ctl.stop()
    assert code == 0 and got["delivery"][0] == "ok" and "answers: 220 mail.victim-corp.com" in got["delivery"][1]


def test_clamd_dns_recall_and_a_database_that_do_not_answer(settings: Settings, tmp_path: Path) -> None:
    closed = free_port()
    with silent_dns() as quiet:
        code, got = check(
            settings, tmp_path,
            attachments={"clamav": {"enabled": True, "address": f"127.0.0.1:{closed}", "timeout": 2.0}},
            dns={"nameservers": ["127.0.0.1"], "port": quiet, "timeout": 1.0},
            recall={"backend": "imap", "imap": {"host": "127.0.0.1", "port": closed}},
        )
    assert code == 1
    assert got["ClamAV"][0] == "fail" and "does not answer PING" in got["ClamAV"][1]
    assert got["DNS"][0] == "fail" and "did not answer" in got["DNS"][1]
    assert got["recall"][0] == "fail" and f"IMAP 127.0.0.1:{closed} does not answer" in got["recall"][1]
    # Spelt as an administrator writes it.
    code, got = check(settings, tmp_path, db=f"postgresql://mailmoat:secret@127.0.0.1:{closed}/mailmoat")
    assert code == 1 and got["database"][0] == "fail" and "secret" not in got["database"][1]
    assert f"127.0.0.1:{closed}" in got["database"][1]


def test_dns_that_answers(settings: Settings, tmp_path: Path) -> None:
    zone = Zone()
    zone.add("victim-corp.com", "MX", "mx.victim-corp.com")
    with dns_server(zone) as server:
        code, got = check(settings, tmp_path, server={"domains": ["victim-corp.com"]},
                          dns={"nameservers": ["127.0.0.1"], "port": server.port, "timeout": 2.0})
    assert code == 0 and got["DNS"] == ("ok", "127.0.0.1 answer (victim-corp.com MX: 1 record(s))")


def test_the_starttls_certificate(settings: Settings, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, 365)
    code, got = check(settings, tmp_path, server={"tls_cert": str(cert), "tls_key": str(key)})
    assert code == 0 and got["STARTTLS"][0] == "ok" and "valid until" in got["STARTTLS"][1]
    soon, soon_key = self_signed(tmp_path, 3, "soon")
    code, got = check(settings, tmp_path, server={"tls_cert": str(soon), "tls_key": str(soon_key)})
    assert code == 0 and got["STARTTLS"][0] == "warn" and "in 3 days" in got["STARTTLS"][1]
    code, got = check(settings, tmp_path, server={"tls_cert": str(cert), "tls_key": str(soon_key)})
    assert code == 1 and got["STARTTLS"][0] == "fail" and "cannot load" in got["STARTTLS"][1]


def test_the_quarantine_digest_links(settings: Settings, tmp_path: Path) -> None:
    cases = [
        ({"enabled": True, "hours": [17, 8]}, 0, "warn", "at 08:00, 17:00, without release links"),
        ({"enabled": True, "console_url": "mailmoat.victim-corp.com"}, 1, "fail", "not an http(s) address"),
        ({"enabled": True, "console_url": "http://mailmoat.victim-corp.com"}, 0, "warn", "not HTTPS"),
        ({"enabled": True, "console_url": "https://mailmoat.victim-corp.com"}, 0, "ok", "links to https://mailmoat.victim-corp.com"),
    ]
    for section, want_code, state, detail in cases:
        code, got = check(settings, tmp_path, digest=section)
        assert code == want_code and got["digest"][0] == state and detail in got["digest"][1], (section, got["digest"])
    code, got = check(settings, tmp_path, digest={"enabled": True, "console_url": "https://m.example", "days": 45.0})
    assert code == 0 and got["digest"][0] == "warn" and "longer than retention.raw_days (30)" in got["digest"][1]
    code, got = check(settings, tmp_path, server={"domains": ["victim-corp.com"]},
                      digest={"enabled": True, "console_url": "https://m.example", "domains": ["Victim-Corp.com", "victim-corp.cn"]})
    assert code == 0 and got["digest"] == ("warn", "digest.domains ['victim-corp.cn'] are not in server.domains: their recipients get no digest")
    assert "digest" not in check(settings, tmp_path, digest={"enabled": False})[1]


def test_the_report_mailbox(settings: Settings, tmp_path: Path) -> None:
    assert "reports" not in check(settings, tmp_path)[1]
    code, got = check(settings, tmp_path, server={"domains": ["victim-corp.com"]},
                      policy={"report_addresses": ["phish@victim-corp.com"]})
    assert code == 0 and got["reports"][0] == "warn" and "no server.internal_listen" in got["reports"][1]
    code, got = check(settings, tmp_path, server={"domains": ["victim-corp.com"], "internal_listen": "127.0.0.1:10026"},
                      policy={"report_addresses": ["phish@victim-corp.cn"]})
    assert got["reports"][0] == "warn" and "not in server.domains" in got["reports"][1]
    code, got = check(settings, tmp_path, server={"domains": ["victim-corp.com"], "internal_listen": "127.0.0.1:10026"},
                      policy={"report_addresses": ["phish@victim-corp.com"], "report_condemn_after": 3})
    assert code == 0 and got["reports"] == ("ok", "phish@victim-corp.com through 127.0.0.1:10026; a message 3 colleagues report is condemned")
