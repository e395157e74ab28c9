"""Containment by policy: hold, alerts (log, webhook, email), recall by incident; release; the incidents CLI."""

from __future__ import annotations

import email.policy
import json
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from mailmoat.accounts import observe
from mailmoat.accounts.incidents import IncidentError, list_incidents, release_incident, show_incident
from mailmoat.cli import app
from mailmoat.config import Settings
from mailmoat.model import Action, Direction, Envelope, Verdict
from mailmoat.parse import parse
from mailmoat.store.audit_models import AuditRow
from mailmoat.store.db import Store
from mailmoat.store.recall_models import RecallJobRow
from tests.support import accountsim as sim

COLLEAGUES = [f"c{i:02d}@corp.test" for i in range(40)]


class Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    Hook.received = []
    srv = HTTPServer(("127.0.0.1", 0), Hook)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/incident"
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def org_store(settings: Settings) -> Iterator[tuple[sim.Org, Store]]:
    org = sim.make_org(COLLEAGUES, n_senders=4)
    settings.server.domains = [org.domain]
    settings.accounts.submission_hosts = [sim.MAIL_HOST]
    settings.accounts.fanout_recipients = 5
    settings.accounts.security_address = "soc@corp.test"
    store = Store(settings.db_url, raw_dir=settings.raw_dir)
    sim.replay(store, settings, sim.normal_week(org, time.time() - 3600))
    yield org, store
    store.close()


async def wave(settings: Settings, store: Store, org: sim.Org, attacker: str, n: int) -> list[sim.Sent]:
    driver = sim.Driver(settings, store)
    try:
        out = []
        for rcpt in [c for c in org.colleagues if c != attacker][:n]:
            out.append(await driver.send(sim.internal_env(attacker, [rcpt]), sim.fraud_mail(org, attacker, rcpt, qr=False)))
        return out
    finally:
        driver.close()


async def test_automatic_containment_holds_alerts_and_recalls(settings: Settings, org_store: tuple[sim.Org, Store], webhook: str) -> None:
    org, store = org_store
    settings.accounts.webhook = webhook
    attacker = org.senders[2]
    sent = await wave(settings, store, org, attacker, 12)
    first = next(i for i, s in enumerate(sent) if s.incident is not None)
    inc = sent[first].incident
    assert inc is not None and first == 4  # the 5th colleague completes the fan-out
    assert [s.action for s in sent[:first]] == ["tag"] * first
    assert all(s.action == "quarantine" and "ACCOUNT_HELD" in s.symbols for s in sent[first + 1 :])
    assert inc.held and inc.mode == "automatic" and inc.account == attacker
    assert inc.alerts["webhook"].startswith("sent")
    assert inc.alerts["email"] == "soc@corp.test: delivered"
    # The webhook got the incident as JSON; the security mailbox got the alert.
    assert Hook.received[0]["event"] == "account.compromised" and Hook.received[0]["account"] == attacker
    soc = list((settings.mail_dir / "soc@corp.test" / "new").iterdir())
    assert len(soc) == 1 and attacker.encode() in soc[0].read_bytes()
    # The copies delivered before containment were recalled by a job of trigger "incident".
    assert sim.maildir_holders(settings.mail_dir, org.colleagues, {s.envelope.id for s in sent}) == []
    with store.session() as s:
        jobs = s.scalars(select(RecallJobRow)).all()
        assert [j.trigger for j in jobs] == ["incident"] and jobs[0].state == "done"
        assert s.scalars(select(AuditRow.action).where(AuditRow.action == "account.contain")).all()
    detail = show_incident(store, inc.id)
    assert detail is not None
    assert detail["recalled_copies"] == first + 1 - sum(1 for s in sent[: first + 1] if s.action == "quarantine")
    assert len(detail["held_messages"]) >= len(sent) - first - 1
    assert detail["evidence"]["signals"]["new_ip"] is True


def _report(org: sim.Org, reporter: str, to: str) -> bytes:
    """A colleague forwards the QR fraud they received, as an attachment, to the report mailbox."""
    fwd = EmailMessage()
    fwd["From"] = reporter
    fwd["To"] = to
    fwd["Subject"] = "FW: 工资补贴通知"
    fwd.set_content("这封邮件看起来像诈骗，请安全组处理。")
    fwd.add_attachment(message_from_bytes(sim.fraud_mail(org, "caiwu@corp-notice.example", reporter), policy=email.policy.default))
    return fwd.as_bytes()


@pytest.mark.parametrize("configured", [False, True])
async def test_reports_to_the_report_mailbox_are_delivered_and_never_contain_the_reporter(
    settings: Settings, org_store: tuple[sim.Org, Store], configured: bool
) -> None:
    org, store = org_store
    if configured:
        settings.policy.report_addresses = ["phish@corp.test"]
    reporter = org.senders[1]
    from mailmoat.store.accounts_models import AccountProfileRow

    with store.session() as s:
        known = s.get(AccountProfileRow, reporter)
        before = dict(known.link_domains or {}) if known is not None else {}
    driver = sim.Driver(settings, store)
    try:
        sent = [await driver.send(sim.internal_env(reporter, ["phish@corp.test"]), _report(org, reporter, "phish@corp.test")) for _ in range(3)]
    finally:
        driver.close()
    if not configured:
        # Without it, the diligent reporter looks like an account sending phishing, and is contained.
        assert [x.action for x in sent] == ["quarantine"] * 3 and sent[2].incident is not None
        return
    assert [x.action for x in sent] == ["tag"] * 3 and all("STAFF_REPORT" in x.symbols for x in sent)
    assert all(x.incident is None for x in sent) and list_incidents(store) == []
    assert len(list((settings.mail_dir / "phish@corp.test" / "new").iterdir())) == 3
    # What a report forwards is the phish's: its links are not learnt as the reporter's usual ones.
    from mailmoat.store.accounts_models import AccountProfileRow

    with store.session() as s:
        profile = s.get(AccountProfileRow, reporter)
        assert profile is not None and before == dict(profile.link_domains or {}), profile.link_domains


async def test_release_lifts_the_hold(settings: Settings, org_store: tuple[sim.Org, Store]) -> None:
    org, store = org_store
    attacker = org.senders[1]
    sent = await wave(settings, store, org, attacker, 6)
    inc = next(s.incident for s in sent if s.incident is not None)
    assert inc is not None
    released = release_incident(store, inc.id, "admin", "password reset, MFA enrolled")
    assert released.state == "released" and not released.held and released.note.startswith("password")
    with pytest.raises(IncidentError):
        release_incident(store, inc.id, "admin")
    # Ordinary mail from the usual machine is delivered again.
    driver = sim.Driver(settings, store)
    try:
        rcpt = org.peers[attacker][0]
        env = sim.internal_env(attacker, [rcpt])
        again = await driver.send(env, sim.work_mail(org, attacker, [rcpt], time.time(), "周报", "本周工作已完成。"))
    finally:
        driver.close()
    assert again.action == "deliver" and again.incident is None


async def test_approval_mode_holds_and_waits_for_recall_approval(settings: Settings, org_store: tuple[sim.Org, Store]) -> None:
    org, store = org_store
    settings.accounts.containment = "approval"
    attacker = org.senders[0]
    sent = await wave(settings, store, org, attacker, 8)
    inc = next(s.incident for s in sent if s.incident is not None)
    assert inc is not None and inc.held and inc.mode == "approval"
    with store.session() as s:
        jobs = s.scalars(select(RecallJobRow)).all()
        assert [j.state for j in jobs] == ["awaiting_approval"]
    delivered = [s for s in sent if s.action == "tag"]
    assert sim.maildir_holders(settings.mail_dir, org.colleagues, {s.envelope.id for s in delivered})


async def test_alert_mode_only_alerts(settings: Settings, org_store: tuple[sim.Org, Store]) -> None:
    org, store = org_store
    settings.accounts.containment = "alert"
    attacker = org.senders[3]
    sent = await wave(settings, store, org, attacker, 8)
    incidents = list_incidents(store)
    assert len(incidents) == 1 and not incidents[0].held and incidents[0].recall_jobs == []
    assert not any("ACCOUNT_HELD" in s.symbols for s in sent)
    # Per-message scoring still applies: the fan-out from a new origin is quarantined on its own score.
    assert "ACCOUNT_SAME_CONTENT_FANOUT" in sent[-1].symbols


async def test_copy_delivered_after_the_hold_is_recalled(settings: Settings, org_store: tuple[sim.Org, Store]) -> None:
    org, store = org_store
    attacker = org.senders[2]
    await wave(settings, store, org, attacker, 6)
    inc = list_incidents(store)[0]
    # A message scanned before the hold (so delivered) is observed after it: its copies are pulled back.
    driver = sim.Driver(settings, store)
    try:
        rcpt = org.colleagues[-1]
        env = sim.internal_env(attacker, [rcpt])
        raw = sim.fraud_mail(org, attacker, rcpt, qr=False)
        msg = parse(raw)
        verdict = Verdict(action=Action.DELIVER, score=0.0, findings=[], reasons=[])
        store.record_message(env, msg, verdict, store.retain_raw(env, raw))
        await driver.delivery.deliver(env, raw, verdict, msg)
        assert sim.maildir_holders(settings.mail_dir, [rcpt], {env.id}) == [rcpt]
        assert await observe(store, settings, env, msg, verdict) is None
    finally:
        driver.close()
    assert sim.maildir_holders(settings.mail_dir, [rcpt], {env.id}) == []
    assert len(show_incident(store, inc.id)["recall_jobs"]) == 2  # type: ignore[index]


async def test_observe_never_raises(settings: Settings) -> None:
    settings.server.domains = ["corp.test"]
    env = Envelope(mail_from="a@corp.test", rcpt_tos=["b@corp.test"], direction=Direction.INTERNAL)
    msg = parse(b"From: a@corp.test\r\n\r\nx")
    broken: Any = object()  # no session(): the hook logs and carries on
    assert await observe(broken, settings, env, msg, Verdict(action=Action.DELIVER, score=0, findings=[], reasons=[])) is None


async def test_incidents_cli(settings: Settings, org_store: tuple[sim.Org, Store]) -> None:
    org, store = org_store
    await wave(settings, store, org, org.senders[1], 6)
    inc = list_incidents(store)[0]
    runner = CliRunner()
    base = ["--data-dir", settings.data_dir]
    r = runner.invoke(app, ["incidents", "list", *base, "--format", "json"])
    assert r.exit_code == 0, r.output
    assert [i["id"] for i in json.loads(r.output)] == [inc.id]
    r = runner.invoke(app, ["incidents", "show", inc.id, *base, "--format", "json"])
    assert r.exit_code == 0 and json.loads(r.output)["account"] == org.senders[1]
    r = runner.invoke(app, ["incidents", "show", inc.id, *base])
    assert r.exit_code == 0 and "held messages" in r.output
    r = runner.invoke(app, ["incidents", "release", inc.id, *base, "--note", "false alarm", "--format", "json"])
    assert r.exit_code == 0 and json.loads(r.output)["state"] == "released"
    r = runner.invoke(app, ["incidents", "release", inc.id, *base])
    assert r.exit_code == 1 and "already released" in r.output
    r = runner.invoke(app, ["incidents", "show", "nope", *base])
    assert r.exit_code == 1
