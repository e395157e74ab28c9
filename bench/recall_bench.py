"""Recall speed against a real Dovecot: N mailboxes, one message delivered to all (plus background mail);
recall time through each backend, and `doveadm move -A` typed by hand as the floor, in the same run.

    PYTHONPATH=. .venv/bin/python bench/recall_bench.py [--users 1000] [--background 3]
"""

from __future__ import annotations

import argparse
import asyncio
import smtplib
import sys
import tempfile
import time
from pathlib import Path

from tests.support.dovecot import DovecotServer, dovecot_server
from tests.support.recallkit import SqliteStore

from mailmoat.config import Settings
from mailmoat.recall.backends import get_backend
from mailmoat.recall.engine import RecallEngine
from mailmoat.recall.selection import Selector
from mailmoat.store.models import DeliveryRow, MessageRow


def deliver_wave(dc: DovecotServer, store: SqliteStore | None, mail_id: str, users: list[str]) -> float:
    """One copy per user, each with its own tracking id (as the gateway delivers); returns seconds."""
    t0 = time.perf_counter()
    with smtplib.LMTP("127.0.0.1", dc.lmtp_port) as lmtp:
        for i, u in enumerate(users):
            raw = (f"X-Mailmoat-Id: {mail_id}-{i:04d}\r\nFrom: attacker@evil.example\r\nTo: {u}\r\n"
                   f"Subject: wave {mail_id}\r\nMessage-ID: <{mail_id}@evil.example>\r\n\r\nscan the QR code\r\n").encode()
            lmtp.sendmail("attacker@evil.example", [u], raw)
    took = time.perf_counter() - t0
    if store is not None:
        with store.session() as s:
            s.add(MessageRow(id=mail_id, received_at=time.time(), direction="inbound", mail_from="attacker@evil.example",
                             rcpt_tos=users, subject=f"wave {mail_id}", message_id=f"<{mail_id}@evil.example>", action="deliver"))
            s.add_all(DeliveryRow(message_id=mail_id, recipient=u, mailbox=u, tracking_id=f"{mail_id}-{i:04d}",
                                  status="delivered") for i, u in enumerate(users))
            s.commit()
    return took


def background(dc: DovecotServer, users: list[str], n: int) -> None:
    with smtplib.LMTP("127.0.0.1", dc.lmtp_port) as lmtp:
        for k in range(n):
            raw = f"From: colleague@corp.example\r\nSubject: weekly notes {k}\r\n\r\nnothing to see\r\n".encode()
            for start in range(0, len(users), 200):
                lmtp.sendmail("colleague@corp.example", users[start : start + 200], raw)
                for _ in users[start + 1 : start + 200]:
                    lmtp.getreply()  # LMTP answers once per recipient


async def run_backend(
    name: str, dc: DovecotServer, users: list[str], data: Path, view: str = ""
) -> dict[str, float | int | str]:
    settings = Settings()
    settings.recall.imap.all_folders = view
    settings.data_dir = str(data / (name + ("-view" if view else "")))
    settings.data_path.mkdir(parents=True)
    settings.recall.backend = name
    settings.recall.imap.host, settings.recall.imap.port = "127.0.0.1", dc.imap_port
    settings.recall.imap.master_user, settings.recall.imap.master_password = dc.master_user, dc.master_password
    settings.recall.doveadm.url, settings.recall.doveadm.api_key = dc.api_url, dc.api_key
    store = SqliteStore(settings.data_path / "bench.db")
    mail_id = f"01BENCH{name.upper() + ('VIEW' if view else ''):0<19}"[:26]
    deliver_wave(dc, store, mail_id, users)
    engine = RecallEngine(settings, store, backend=get_backend(settings))
    t0 = time.perf_counter()
    job = engine.plan(Selector(mail_id=mail_id), "bench")
    st = await engine.run(job, "bench")
    took = time.perf_counter() - t0
    left = dc.doveadm("search", "-A", "mailbox", "*", "header", "X-Mailmoat-Id", mail_id, check=False).stdout.count("\n")
    t1 = time.perf_counter()
    restored = await engine.restore(job, "bench")
    restore_took = time.perf_counter() - t1
    return {"backend": name + (f" ({view})" if view else ""), "seconds": took, "state": st["state"], "recalled": st["counts"].get("recalled", 0),
            "still_visible": left, "restore_seconds": restore_took, "restored": restored["counts"].get("restored", 0)}


def floor(dc: DovecotServer, users: list[str]) -> dict[str, float | int | str]:
    mail_id = "01BENCHFLOOR00000000000000"
    deliver_wave(dc, None, mail_id, users)
    t0 = time.perf_counter()
    dc.doveadm("move", "-A", "MailmoatRecall/INBOX", "mailbox", "INBOX", "header", "X-Mailmoat-Id", mail_id, timeout=600)
    took = time.perf_counter() - t0
    left = dc.doveadm("search", "-A", "mailbox", "*", "header", "X-Mailmoat-Id", mail_id, check=False).stdout.count("\n")
    return {"backend": "doveadm move -A (by hand)", "seconds": took, "state": "done", "recalled": len(users) - left, "still_visible": left}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--background", type=int, default=3, help="background messages per mailbox")
    args = ap.parse_args()
    with dovecot_server(args.users) as dc, tempfile.TemporaryDirectory() as tmp:
        users = sorted(dc.users)
        t0 = time.perf_counter()
        background(dc, users, args.background)
        print(f"{len(users)} mailboxes, {args.background} background messages each ({time.perf_counter() - t0:.1f}s)")
        # The hidden folder exists for every user before any run, so no side pays for creating it.
        dc.doveadm("mailbox", "create", "-A", "MailmoatRecall/INBOX", check=False, timeout=600)
        rows = [floor(dc, users)]
        for name in ("doveadm", "imap"):
            rows.append(asyncio.run(run_backend(name, dc, users, Path(tmp))))
        rows.append(asyncio.run(run_backend("imap", dc, users, Path(tmp), view="MailmoatAll/All")))
    base = float(rows[0]["seconds"])
    print(f"{'backend':28} {'recall s':>9} {'x floor':>8} {'recalled':>9} {'visible':>8} {'restore s':>10}")
    for r in rows:
        restore = f"{float(r['restore_seconds']):10.2f}" if "restore_seconds" in r else f"{'-':>10}"
        print(f"{r['backend']!s:28} {float(r['seconds']):9.2f} {float(r['seconds']) / base:8.2f} "
              f"{r['recalled']!s:>9} {r['still_visible']!s:>8} {restore}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
