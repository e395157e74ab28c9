"""Through the real gateway: the internal relay listener, concurrent workers, the accounts hook after delivery."""

from __future__ import annotations

import inspect
import smtplib
import time
from typing import Any

import pytest
from sqlalchemy import func, select

from mailmoat.accounts import observe
from mailmoat.accounts.incidents import list_incidents, show_incident
from mailmoat.config import Settings
from mailmoat.deliver.service import DeliveryService
from mailmoat.pipeline import Pipeline
from mailmoat.store.db import Store
from mailmoat.store.models import MessageRow
from mailmoat.store.recall_models import RecallJobRow
from tests.support import accountsim as sim
from tests.support.gateway import inprocess_gateway, wait_for

N = 60


@pytest.fixture
def hooked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Until the pipeline calls `accounts.observe` itself, call it right after each delivery."""
    if "observe" in inspect.getsource(Pipeline):
        return
    original = DeliveryService.deliver

    async def deliver(self: DeliveryService, envelope: Any, raw: bytes, verdict: Any, message: Any = None) -> Any:
        out = await original(self, envelope, raw, verdict, message)
        if message is not None:
            await observe(self.store, self.settings, envelope, message, verdict)
        return out

    monkeypatch.setattr(DeliveryService, "deliver", deliver)


def test_wave_through_the_internal_listener(settings: Settings, hooked: None) -> None:
    org = sim.make_org([f"staff{i:03d}@corp.test" for i in range(N + 1)], n_senders=10)
    settings.server.domains = [org.domain]
    settings.server.listen = "127.0.0.1:0"
    settings.server.internal_listen = "127.0.0.1:0"
    settings.server.workers = 0
    settings.accounts.submission_hosts = [sim.MAIL_HOST]
    store = Store(settings.db_url, raw_dir=settings.raw_dir)
    sim.replay(store, settings, sim.normal_week(org, time.time() - 3600))
    attacker = org.senders[4]
    victims = [c for c in org.colleagues if c != attacker]
    with inprocess_gateway(settings) as gw, smtplib.SMTP("127.0.0.1", gw.internal_port, timeout=30) as smtp:
        for rcpt in victims:  # the mail system relays each copy as soon as the account submits it
            smtp.sendmail(attacker, [rcpt], sim.fraud_mail(org, attacker, rcpt, qr=False))

        def settled() -> bool:
            with store.session() as s:
                n = s.scalar(select(func.count()).select_from(MessageRow).where(MessageRow.mail_from == attacker))
                busy = s.scalar(select(func.count()).select_from(RecallJobRow).where(RecallJobRow.state.in_(["planned", "running"])))
            return n == N and not busy and bool(list_incidents(store))

        wait_for(settled, timeout=120, what="the wave to be processed and recalled")
        time.sleep(0.5)  # a late copy's recall starts right after its delivery: let it finish
        wait_for(settled, timeout=60, what="late recalls")
    with store.session() as s:
        rows = s.scalars(select(MessageRow).where(MessageRow.mail_from == attacker).order_by(MessageRow.received_at)).all()
        ids = {r.id for r in rows}
        actions = [r.action for r in rows]
    incidents = list_incidents(store)
    assert [i.account for i in incidents] == [attacker]
    detail = show_incident(store, incidents[0].id)
    assert detail is not None
    delivered = actions.count("tag") + actions.count("deliver")
    print(f"\n[gateway] {N} messages: delivered {delivered}, held {actions.count('quarantine')}, "
          f"recalled {detail['recalled_copies']}, recall jobs {len(detail['recall_jobs'])}")
    assert delivered <= 20
    assert actions.count("quarantine") >= N - 20
    assert detail["recalled_copies"] == delivered
    assert sim.maildir_holders(settings.mail_dir, victims, ids) == []
    store.close()
