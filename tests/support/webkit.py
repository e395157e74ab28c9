"""Web API test set-up: a store with real scanned, recorded and delivered messages, users of every role, a client."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from mailmoat.config import Settings
from mailmoat.deliver.service import DeliveryService
from mailmoat.model import Action, Envelope, Message, Verdict
from mailmoat.store.db import Store
from mailmoat.store.web_models import UserRow
from mailmoat.web import create_app
from mailmoat.web.auth import create_token, hash_password
from tests.support import qrmail

ROLES = ("admin", "analyst", "auditor")
PASSWORD = "correct horse battery"  # every test user's password
RECIPIENTS = ["zhang.wei@victim-corp.com", "li.na@victim-corp.com"]
QR_URL = qrmail.SUBSIDY_URL


def newsletter() -> bytes:
    return (
        b"From: News <news@letters.example>\r\nTo: li.na@victim-corp.com\r\nSubject: Weekly notes\r\n"
        b"Message-ID: <weekly-1@letters.example>\r\nDate: Tue, 10 Jun 2025 09:00:00 +0000\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n"
        b"<html><body><p>Hello <b>there</b></p><script>alert(1)</script>"
        b"<img src='https://tracker.example/p.gif'><a href='https://letters.example/read'>read</a></body></html>\r\n"
    )


def locked_notice() -> bytes:
    """A one-line plain part beside the HTML lure, and a PDF locked with the password the mail gives,
    whose text carries markup that must stay text."""
    from email.message import EmailMessage

    from tests.support import attachgen

    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "财务部 <notice@subsidy-center.example>", RECIPIENTS[0], "补贴通知"
    m.set_content("HTML not loaded.")
    m.add_alternative("<p>附件为补贴通知，打开密码：2026</p>", subtype="html")
    pdf = attachgen.pdf_text(["关于发放工资补贴的通知", "<script>alert(2)</script> 请扫码申领"], password="2026")
    m.add_attachment(pdf, maintype="application", subtype="pdf", filename="补贴通知.pdf")
    return m.as_bytes()


@functools.cache
def password_hash() -> str:
    return hash_password(PASSWORD)


@functools.cache
def scanned() -> dict[str, tuple[bytes, Message, Verdict]]:
    """The sample messages through the real scanner, once per test session (building it takes seconds)."""
    from mailmoat.scanner import Scanner

    settings = Settings()
    settings.data_dir = "/nonexistent-mailmoat-test"  # the scan itself writes nothing
    scanner = Scanner(settings)
    out: dict[str, tuple[bytes, Message, Verdict]] = {}
    samples = {
        "qr": qrmail.stage3_cid_attachment(), "held": qrmail.stage1_inline(), "clean": newsletter(), "locked": locked_notice(),
    }

    async def run() -> None:
        for key, raw in samples.items():
            env = Envelope(mail_from="x@sender.example", rcpt_tos=list(RECIPIENTS), size=len(raw))
            res = await scanner.scan(raw, env)
            out[key] = (raw, res.message, res.verdict)

    asyncio.run(run())
    return out


def api_token(store: Store, role: str) -> dict[str, str]:
    """A user of `role` in `store`, and a bearer header for the API as that user."""
    with store.session() as s:
        u = UserRow(username=role, password_hash="-", role=role, created_at=time.time())
        s.add(u)
        s.flush()
        return {"Authorization": f"Bearer {create_token(s, u, 'test')[1]}"}


@dataclass
class WebEnv:
    settings: Settings
    store: Store
    client: TestClient
    tokens: dict[str, str] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)

    def as_role(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def login(self, role: str) -> str:
        """Log the client in with the session cookie; returns the CSRF token."""
        r = self.client.post("/api/v1/auth/login", json={"username": role, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return str(r.json()["csrf"])

    def audit(self, action: str, target: str = "") -> list[dict[str, Any]]:
        from sqlalchemy import select

        from mailmoat.store.audit_models import AuditRow

        with self.store.session() as s:
            q = select(AuditRow).where(AuditRow.action == action)
            if target:
                q = q.where(AuditRow.target == target)
            return [{"actor": r.actor, "source": r.source, "detail": r.detail, "target": r.target, "note": r.note} for r in s.scalars(q)]


def record_and_deliver(settings: Settings, store: Store, key: str, action: Action, rcpts: list[str]) -> str:
    raw, message, verdict = scanned()[key]
    env = Envelope(mail_from=message.from_.addr or "x@sender.example", rcpt_tos=list(rcpts), size=len(raw), peer_ip="192.0.2.7")
    v = Verdict(action, verdict.score, list(verdict.findings), list(verdict.reasons))
    path = store.retain_raw(env, raw, settings.raw_dir)
    store.record_message(env, message, v, path)
    service = DeliveryService(settings, store)
    try:
        asyncio.run(service.deliver(env, raw, v, message))
    finally:
        service.close()
    return env.id


@contextmanager
def web_env(tmp_path: Path) -> Iterator[WebEnv]:
    """A fresh data dir and store, three delivered/held messages, one user and token per role, a client."""
    settings = Settings()
    settings.data_dir = str(tmp_path / "var")
    settings.recall.approval_above = 0
    store = Store(settings.db_url, raw_dir=settings.raw_dir)
    tokens = {}
    with store.session() as s:
        for role in ROLES:
            # Argon2id is slow on purpose: hash the shared test password once per session.
            u = UserRow(username=role, password_hash=password_hash(), role=role, created_at=time.time())
            s.add(u)
            s.flush()
            tokens[role] = create_token(s, u, f"{role} test token")[1]
    ids = {
        "qr": record_and_deliver(settings, store, "qr", Action.DELIVER, RECIPIENTS),
        "held": record_and_deliver(settings, store, "held", Action.QUARANTINE, RECIPIENTS[:1]),
        "clean": record_and_deliver(settings, store, "clean", Action.DELIVER, RECIPIENTS[1:]),
    }
    app = create_app(settings, store)
    try:
        with TestClient(app, base_url="http://testserver") as client:
            yield WebEnv(settings, store, client, tokens, ids)
    finally:
        store.close()
