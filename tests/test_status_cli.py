"""`mailmoat status`: a quiet gateway, a mail system that is down, and mail stuck in the spool, as an operator sees them."""

from __future__ import annotations

import json
import os
import smtplib
import time

import pytest
from typer.testing import CliRunner

from mailmoat.cli import app
from mailmoat.config import Settings
from mailmoat.ingest.spool import Spool
from mailmoat.model import Envelope
from tests.support import qrmail
from tests.support.gateway import inprocess_gateway, wait_for
from tests.support.net import free_port

runner = CliRunner()
NOTE = b"From: Carol <carol@partner.example>\r\nTo: bob@localhost\r\nSubject: Minutes\r\n\r\nThe minutes.\r\n"


def now_json(settings: Settings) -> dict[str, object]:
    return json.loads(runner.invoke(app, ["status", "--format", "json", "--data-dir", settings.data_dir]).output)  # type: ignore[no-any-return]


def status(settings: Settings) -> tuple[int, dict[str, object], str]:
    """Once the gateway has stopped: the same state as JSON and as text, with the same exit code."""
    as_json = runner.invoke(app, ["status", "--format", "json", "--data-dir", settings.data_dir])
    text = runner.invoke(app, ["status", "--data-dir", settings.data_dir])
    assert as_json.exit_code == text.exit_code
    return as_json.exit_code, json.loads(as_json.output), text.output


@pytest.mark.usefixtures("roomy_disk")
def test_quiet_then_the_mail_system_down_then_a_stuck_spool(settings: Settings) -> None:
    settings.server.workers = 0
    with inprocess_gateway(settings) as gw:
        with smtplib.SMTP(gw.host, gw.port, timeout=30) as c:
            c.sendmail("carol@partner.example", ["bob@localhost"], NOTE)
            c.sendmail("x@sender.example", ["bob@localhost"], qrmail.stage2_spoofed_department())
        wait_for(lambda: now_json(settings)["last_hour"] == {"deliver": 1, "quarantine": 1}, what="both messages recorded")
    code, st, text = status(settings)
    assert code == 0 and st["held"] == 1 and st["queue"] == {} and st["attention"] == []
    assert "quarantine: 1 held" in text and "nothing needs attention" in text

    # The mail system is down: the copy waits in the queue, with the reply that says why.
    settings.delivery.relay_to = f"smtp://127.0.0.1:{free_port()}"
    settings.delivery.connect_timeout = 2.0
    with inprocess_gateway(settings) as gw:
        with smtplib.SMTP(gw.host, gw.port, timeout=30) as c:
            c.sendmail("carol@partner.example", ["bob@localhost"], NOTE)
        wait_for(lambda: now_json(settings)["queue"] == {"deferred": 1}, what="a deferred copy")
    code, st, text = status(settings)
    assert code == 1 and st["queue"] == {"deferred": 1} and st["queue_last_reply"]
    assert "attention: 1 copy waits for the mail system" in text and "last reply:" in text

    # Accepted mail that no worker has taken for ten minutes (the gateway is stopped).
    spool = Spool(settings.spool_dir)
    ref = spool.write(Envelope("carol@partner.example", ["bob@localhost"]), NOTE)
    old = time.time() - 600
    os.utime(ref.path, (old, old))
    code, st, text = status(settings)
    assert code == 1 and st["spool_waiting"] == 1 and st["spool_oldest_age"] >= 600
    assert "mail has waited 10 min in the spool" in text


def test_a_disk_running_full_needs_attention(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    import mailmoat.status
    from mailmoat.store.db import Store

    Store(settings.db_url).close()  # status reads an existing store only
    monkeypatch.setattr(mailmoat.status, "DISK_LOW_BYTES", 0)
    monkeypatch.setattr(mailmoat.status, "DISK_LOW_FRACTION", 0.0)
    code, st, text = status(settings)
    assert code == 0 and st["disk_free_bytes"] > 0 and "GiB free" in text
    monkeypatch.setattr(mailmoat.status, "DISK_LOW_FRACTION", 1.01)  # whatever is free is too little
    code, st, text = status(settings)
    assert code == 1 and [a["kind"] for a in st["attention"]] == ["disk_low"]
    assert "the spool stops taking mail when it is full" in text


@pytest.mark.usefixtures("roomy_disk")
def test_a_recall_stuck_at_work_needs_attention_a_preview_nobody_ran_does_not(settings: Settings) -> None:
    from mailmoat.store.db import Store
    from mailmoat.store.recall_models import RecallJobRow

    store = Store(settings.db_url, raw_dir=settings.raw_dir)
    two_hours_ago = time.time() - 7200
    with store.session() as s:
        s.add(RecallJobRow(id="JOB-PREVIEW", created_at=two_hours_ago, state="planned"))
        s.add(RecallJobRow(id="JOB-APPROVAL", created_at=two_hours_ago, state="awaiting_approval"))
    code, st, _ = status(settings)
    assert code == 0 and st["recalls_unsettled"] == 2 and st["recalls_stale"] == 0
    with store.session() as s:
        s.add(RecallJobRow(id="JOB-STUCK", created_at=two_hours_ago, updated_at=two_hours_ago + 60, state="running"))
        s.add(RecallJobRow(id="JOB-BUSY", created_at=two_hours_ago, updated_at=time.time(), state="running"))
    store.close()
    code, st, text = status(settings)
    assert code == 1 and st["recalls_unsettled"] == 4 and st["recalls_stale"] == 1
    assert "1 recall unsettled for over an hour" in text
