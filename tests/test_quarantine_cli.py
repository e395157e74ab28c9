"""`mailmoat quarantine`: what the gateway held, listed, shown, downloaded, released once and deleted from the command line."""

from __future__ import annotations

import json
import os
import smtplib
import subprocess
from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from mailmoat.cli import app
from mailmoat.config import Settings
from mailmoat.store.audit_models import AuditRow
from mailmoat.store.db import Store
from tests.support import qrmail
from tests.support.gateway import MAILMOAT, inprocess_gateway, maildir_copies, wait_for

runner = CliRunner()
ALICE, BOB = "alice@victim-corp.com", "bob@victim-corp.com"
CLEAN = b"From: Carol <carol@partner.example>\r\nTo: bob@victim-corp.com\r\nSubject: Minutes of Tuesday\r\n" \
        b"Message-ID: <minutes-1@partner.example>\r\n\r\nThe minutes are below. Thanks for coming.\r\n"


def cli(settings: Settings, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["quarantine", *args, "--data-dir", settings.data_dir])
    return result.exit_code, result.output


def held_ids(settings: Settings) -> list[str]:
    code, out = cli(settings, "list", "--format", "json")
    assert code == 0, out
    return [i["id"] for i in json.loads(out)["items"]]


def audit_rows(settings: Settings, action: str) -> list[AuditRow]:
    store = Store(settings.db_url)
    try:
        with store.session() as s:
            return list(s.scalars(select(AuditRow).where(AuditRow.action == action)).all())
    finally:
        store.close()


def test_quarantine_from_the_command_line(settings: Settings, tmp_path: Path) -> None:
    settings.server.domains = ["localhost", "victim-corp.com"]
    settings.server.workers = 0
    lure = qrmail.stage2_spoofed_department()  # a department's name on mail from outside, a QR code to a fake site
    with inprocess_gateway(settings) as gw:
        with smtplib.SMTP(gw.host, gw.port, timeout=30) as c:
            c.sendmail("x@sender.example", [ALICE], lure)
            c.sendmail("y@sender.example", [BOB], lure)
            c.sendmail("carol@partner.example", [BOB], CLEAN)
        wait_for(lambda: maildir_copies(settings.mail_dir, BOB), what="the clean message")
        wait_for(lambda: len(held_ids(settings)) == 2, what="two held messages")

    # Listed newest first, narrowed by recipient and sender; the clean message is not held.
    code, out = cli(settings, "list", "--format", "json")
    listed = json.loads(out)
    assert listed["total"] == 2 and all(i["status"] == "quarantined" for i in listed["items"])
    to_alice, to_bob = sorted(listed["items"], key=lambda i: i["rcpt_tos"] != [ALICE])
    assert to_alice["rcpt_tos"] == [ALICE] and to_bob["rcpt_tos"] == [BOB]
    assert held_ids_for(settings, "--rcpt", ALICE) == [to_alice["id"]]
    assert held_ids_for(settings, "--sender", "y@sender.example") == [to_bob["id"]]
    code, out = cli(settings, "list")
    assert code == 0 and "2 of 2 held" in out and to_alice["id"] in out
    code, out = cli(settings, "list", "--since", "last week")
    assert code == 2 and "3d" in out

    # The evidence that held it, and its copy, held.
    code, out = cli(settings, "show", to_alice["id"], "--format", "json")
    shown = json.loads(out)
    assert code == 0 and shown["action"] == "quarantine"
    assert any(f["symbol"].startswith("QR_") and f["evidence"] for f in shown["findings"])
    assert [(c["recipient"], c["status"]) for c in shown["copies"]] == [(ALICE, "held")]
    code, out = cli(settings, "show", to_alice["id"])
    assert code == 0 and "quarantined" in out and "QR_" in out
    assert cli(settings, "show", "NOPE")[0] == 1

    # The raw message as it was received (the gateway's own Received line first).
    result = runner.invoke(app, ["quarantine", "raw", to_alice["id"], "--data-dir", settings.data_dir])
    assert result.exit_code == 0
    assert result.stdout_bytes.startswith(b"Received: from ") and lure in result.stdout_bytes
    assert len(audit_rows(settings, "message.download")) == 1
    # Never onto a terminal, where the message's bytes would be escape sequences to it.
    terminal, other_end = os.openpty()
    try:
        shown = subprocess.run([MAILMOAT, "quarantine", "raw", to_alice["id"], "--data-dir", settings.data_dir],
                               stdout=other_end, stderr=subprocess.PIPE, timeout=120)
    finally:
        os.close(other_end)
        os.close(terminal)
    assert shown.returncode == 2 and b"not shown on a terminal" in shown.stderr
    assert len(audit_rows(settings, "message.download")) == 1

    # Released: delivered once, to its recipient only, and learnt as a release; not twice.
    assert not maildir_copies(settings.mail_dir, ALICE)
    code, out = cli(settings, "release", to_alice["id"], "--rcpt", BOB)
    assert code == 1 and "not a recipient" in out and not maildir_copies(settings.mail_dir, ALICE)
    code, out = cli(settings, "release", to_alice["id"], "--reason", "the finance team confirms it", "--rcpt", ALICE)
    assert code == 0, out
    assert f"released {to_alice['id']}: {ALICE} delivered" in out
    copies = maildir_copies(settings.mail_dir, ALICE)
    assert list(copies) == [f"{to_alice['id']}-0000"] and len(copies[f"{to_alice['id']}-0000"]) == 1
    (row,) = audit_rows(settings, "quarantine.release")
    assert row.target == to_alice["id"] and row.actor.startswith("cli") and row.source == "cli"
    assert row.note == "the finance team confirms it"
    code, out = cli(settings, "release", to_alice["id"])
    assert code == 1 and "already released" in out
    assert len(maildir_copies(settings.mail_dir, ALICE)[f"{to_alice['id']}-0000"]) == 1
    assert held_ids(settings) == [to_bob["id"]]

    # Deleted: never delivered, cannot be released afterwards; an unknown id is an error.
    code, out = cli(settings, "delete", to_bob["id"], "--reason", "phishing")
    assert code == 0 and f"deleted {to_bob['id']}" in out
    assert held_ids(settings) == []
    assert cli(settings, "release", to_bob["id"])[0] == 1
    code, out = cli(settings, "delete", to_bob["id"], "NOPE")
    assert code == 1 and "not in quarantine" in out and "no message NOPE" in out
    assert [r.target for r in audit_rows(settings, "quarantine.delete")] == [to_bob["id"]]
    assert not any(t.startswith(to_bob["id"]) for t in maildir_copies(settings.mail_dir, BOB))  # the clean one alone
    assert len(maildir_copies(settings.mail_dir, BOB)) == 1
    code, out = cli(settings, "list")
    assert code == 0 and "nothing held" in out

    # Who did it: the audit log from the command line.
    result = runner.invoke(app, ["audit", "--action", "quarantine.", "--format", "json", "--data-dir", settings.data_dir])
    rows = json.loads(result.output)["items"]
    assert [(r["action"], r["target"], r["note"]) for r in rows] == [
        ("quarantine.delete", to_bob["id"], "phishing"),
        ("quarantine.release", to_alice["id"], "the finance team confirms it"),
    ]
    result = runner.invoke(app, ["audit", "--target", to_alice["id"], "--data-dir", settings.data_dir])
    assert result.exit_code == 0 and "quarantine.release" in result.output and "message.download" in result.output
    result = runner.invoke(app, ["audit", "--actor", "nobody", "--data-dir", settings.data_dir])
    assert result.exit_code == 0 and "no matching audit rows" in result.output
    assert runner.invoke(app, ["audit", "--since", "lately", "--data-dir", settings.data_dir]).exit_code == 2


def held_ids_for(settings: Settings, *args: str) -> list[str]:
    code, out = cli(settings, "list", "--format", "json", *args)
    assert code == 0, out
    return [i["id"] for i in json.loads(out)["items"]]
