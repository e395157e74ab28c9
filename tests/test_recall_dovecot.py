"""Recall against a real Dovecot through the IMAP (master user) and doveadm HTTP API backends."""

from __future__ import annotations

import json
import smtplib
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailmoat.config import Settings
from mailmoat.recall.backends import get_backend
from mailmoat.recall.engine import RecallEngine
from mailmoat.recall.selection import Selector
from mailmoat.store.models import DeliveryRow, MessageRow
from tests.support.dovecot import DovecotServer, dovecot_server
from tests.support.recallkit import SqliteStore

pytestmark = pytest.mark.dovecot
N_USERS = 12


@pytest.fixture(scope="module")
def dc() -> Iterator[DovecotServer]:
    with dovecot_server(N_USERS) as server:
        yield server


def api(dc: DovecotServer, cmds: list[Any]) -> list[Any]:
    req = urllib.request.Request(
        dc.api_url, data=json.dumps(cmds).encode(), headers={**dc.api_auth_header(), "Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        out: list[Any] = json.loads(resp.read())
    return out


def fetch(dc: DovecotServer, user: str, tid: str, where: str = "*") -> list[dict[str, str]]:
    q = ["mailbox", where, "header", "X-Mailmoat-Id", tid]
    reply = api(dc, [["fetch", {"user": user, "field": ["mailbox", "flags", "date.received", "text"], "query": q}, "t"]])
    assert reply[0][0] == "doveadmResponse", reply
    rows: list[dict[str, str]] = reply[0][1]
    return rows


def lmtp_deliver(dc: DovecotServer, user: str, raw: bytes) -> None:
    with smtplib.LMTP("127.0.0.1", dc.lmtp_port) as lmtp:
        lmtp.sendmail("attacker@evil.example", [user], raw)


def setup_wave(dc: DovecotServer, settings: Settings, mail_id: str) -> tuple[SqliteStore, dict[str, str]]:
    """Deliver one message to every user (each copy with its tracking id), record it, let users file it."""
    settings.data_path.mkdir(parents=True, exist_ok=True)
    store = SqliteStore(settings.data_path / "t.db")
    users = sorted(dc.users)
    tids = {u: f"{mail_id}-{i:04d}" for i, u in enumerate(users)}
    with store.session() as s:
        s.add(MessageRow(id=mail_id, received_at=time.time(), direction="inbound", mail_from="attacker@evil.example",
                         rcpt_tos=users, subject=f"工资补贴通知 {mail_id}", message_id=f"<{mail_id}@evil.example>", action="deliver"))
        for u in users:
            raw = (f"X-Mailmoat-Id: {tids[u]}\r\nFrom: 财务部 <attacker@evil.example>\r\nTo: {u}\r\n"
                   f"Subject: subsidy {mail_id}\r\nMessage-ID: <{mail_id}@evil.example>\r\n\r\nscan the code\r\n").encode()
            lmtp_deliver(dc, u, raw)
            s.add(DeliveryRow(message_id=mail_id, recipient=u, mailbox=u, tracking_id=tids[u], status="delivered"))
        s.commit()
    # Users act on it: one files it (seen + flagged) into a folder, one reads it, one deletes it.
    u1, u2, u3 = users[1], users[2], users[3]
    dc.doveadm("mailbox", "create", "-u", u1, "Finance/2026", check=False)  # exists after an earlier test
    dc.doveadm("flags", "add", "-u", u1, "\\Seen \\Flagged", "mailbox", "INBOX", "header", "X-Mailmoat-Id", tids[u1])
    dc.doveadm("move", "-u", u1, "Finance/2026", "mailbox", "INBOX", "header", "X-Mailmoat-Id", tids[u1])
    dc.doveadm("flags", "add", "-u", u2, "\\Seen", "mailbox", "INBOX", "header", "X-Mailmoat-Id", tids[u2])
    dc.doveadm("expunge", "-u", u3, "mailbox", "INBOX", "header", "X-Mailmoat-Id", tids[u3])
    return store, tids


def configure(settings: Settings, dc: DovecotServer, backend: str) -> None:
    settings.recall.backend = backend
    settings.recall.imap.host, settings.recall.imap.port = "127.0.0.1", dc.imap_port
    settings.recall.imap.master_user, settings.recall.imap.master_password = dc.master_user, dc.master_password
    settings.recall.doveadm.url, settings.recall.doveadm.api_key = dc.api_url, dc.api_key


@pytest.mark.parametrize("backend", ["imap", "imap-all-folders-view", "doveadm", "doveadm-all-users"])
async def test_recall_and_restore_through_dovecot(
    dc: DovecotServer, settings: Settings, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend == "doveadm-all-users":
        # The path a large job takes: one all-users search and one all-users move per folder.
        import mailmoat.recall.backends.doveadm as dv

        monkeypatch.setattr(dv, "ALL_USERS_THRESHOLD", 2)
        backend = "doveadm"
        mail_id = "01RECALLDOVEADMALLUSERS000"
    elif backend == "imap-all-folders-view":
        settings.recall.imap.all_folders = "MailmoatAll/All"  # Dovecot's virtual plugin view
        backend = "imap"
        mail_id = "01RECALLIMAPVIRTUALVIEW000"
    else:
        mail_id = f"01RECALL{backend.upper():0<18}"[:26]
    configure(settings, dc, backend)
    store, tids = setup_wave(dc, settings, mail_id)
    users = sorted(dc.users)
    before = {u: fetch(dc, u, tids[u]) for u in users}
    assert before[users[1]][0]["mailbox"] == "Finance/2026"
    engine = RecallEngine(settings, store, backend=get_backend(settings))
    job = engine.plan(Selector(subject=f"工资补贴通知 {mail_id}"), "analyst", "QR phishing")
    st = await engine.run(job, "analyst")
    assert st["state"] == "done", st
    assert st["counts"] == {"recalled": N_USERS - 1, "not_found": 1}
    for u in users:
        assert fetch(dc, u, tids[u]) == [], f"{u} still sees the message"
    hidden = fetch(dc, users[1], tids[users[1]], "MailmoatRecall/*")
    assert [h["mailbox"] for h in hidden] == ["MailmoatRecall/Finance/2026"]
    copies = {c["tracking_id"]: c for c in st["copies"]}
    assert copies[tids[users[1]]]["folder"] == "Finance/2026"
    assert sorted(copies[tids[users[1]]]["flags"]) == ["\\Flagged", "\\Seen"]

    # The owner cannot open the hidden folder over IMAP (ACL); only the master user can.
    import imaplib

    with imaplib.IMAP4("127.0.0.1", dc.imap_port) as owner:
        owner.login(users[1], dc.users[users[1]])
        typ, _ = owner.select('"MailmoatRecall/Finance/2026"')
        assert typ != "OK"

    # Restore one copy first, then all: same folder, same flags, same internal date, same bytes.
    await engine.restore(job, "analyst", tracking_ids=[tids[users[1]]])
    after1 = fetch(dc, users[1], tids[users[1]])
    assert [r["mailbox"] for r in after1] == ["Finance/2026"]
    st2 = await engine.restore(job, "analyst")
    assert st2["state"] == "restored", st2
    for u in users:
        got = fetch(dc, u, tids[u])
        if u == users[3]:
            assert got == []
            continue
        assert len(got) == 1
        assert got[0]["mailbox"] == before[u][0]["mailbox"]
        assert set(got[0]["flags"].split()) - {"\\Recent"} == set(before[u][0]["flags"].split()) - {"\\Recent"}
        assert got[0]["date.received"] == before[u][0]["date.received"]
        assert got[0]["text"] == before[u][0]["text"]


async def test_failing_mailbox_is_reported(dc: DovecotServer, settings: Settings) -> None:
    configure(settings, dc, "imap")
    store, _ = setup_wave(dc, settings, "01RECALLFAIL00000000000000")
    with store.session() as s:
        s.add(DeliveryRow(message_id="01RECALLFAIL00000000000000", recipient="ghost@example.test",
                          mailbox="ghost@example.test", tracking_id="01RECALLFAIL00000000000000-0999", status="delivered"))
        s.commit()
    engine = RecallEngine(settings, store, backend=get_backend(settings))
    st = await engine.run(engine.plan(Selector(mail_id="01RECALLFAIL00000000000000"), "a"), "a")
    assert st["state"] == "failed"
    failed = [c for c in st["copies"] if c["state"] == "failed"]
    assert [c["recipient"] for c in failed] == ["ghost@example.test"]
    assert failed[0]["attempts"] == settings.recall.max_retries and "login" in failed[0]["reason"]
    assert st["counts"]["recalled"] == N_USERS - 1


def test_hidden_folder_tree_is_not_listed(dc: DovecotServer, tmp_path: Path) -> None:
    import imaplib

    user = sorted(dc.users)[0]
    with imaplib.IMAP4("127.0.0.1", dc.imap_port) as owner:
        owner.login(user, dc.users[user])
        typ, data = owner.list()
        assert typ == "OK"
        assert not any(b"MailmoatRecall" in line for line in data if isinstance(line, bytes))


@pytest.mark.parametrize("backend", ["imap", "doveadm"])
async def test_a_copy_also_filed_in_a_second_folder_is_recalled_and_restored_from_both(
    dc: DovecotServer, settings: Settings, backend: str
) -> None:
    """The user copied the message into Archive and kept it in INBOX: one run hides both (the
    second found when verifying the first), and the restore puts each back in its folder."""
    configure(settings, dc, backend)
    mail_id = f"01TWOFOLDERS{backend.upper():0<14}"[:26]
    store, tids = setup_wave(dc, settings, mail_id)
    user = sorted(dc.users)[0]
    dc.doveadm("mailbox", "create", "-u", user, "Archive", check=False)
    dc.doveadm("copy", "-u", user, "Archive", "mailbox", "INBOX", "header", "X-Mailmoat-Id", tids[user])
    assert sorted(r["mailbox"] for r in fetch(dc, user, tids[user])) == ["Archive", "INBOX"]
    engine = RecallEngine(settings, store, backend=get_backend(settings))
    job = engine.plan(Selector(mail_id=mail_id, since="0"), "analyst", "QR phishing")
    st = await engine.run(job, "analyst")
    assert st["state"] == "done", st
    assert fetch(dc, user, tids[user]) == []
    st2 = await engine.restore(job, "analyst")
    assert st2["state"] == "restored", st2
    assert sorted(r["mailbox"] for r in fetch(dc, user, tids[user])) == ["Archive", "INBOX"]
    assert fetch(dc, user, tids[user], "MailmoatRecall/*") == []
