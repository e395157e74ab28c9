"""End to end: a normal week builds profiles; a taken-over account's QR subsidy-fraud wave is stopped and recalled."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailmoat.accounts.incidents import list_incidents, show_incident
from mailmoat.config import Settings
from mailmoat.store.db import Store
from tests.support import accountsim as sim
from tests.support.dovecot import DovecotServer, dovecot_server

N_COLLEAGUES = 200


@dataclass
class WaveReport:
    first_at: float
    contained_index: int  # 1-based message number whose observation opened the incident (0: never)
    contained_at: float
    delivered_before: int
    held_after: int
    incident_id: str
    recalled: int


def configure(settings: Settings, org: sim.Org, security: str) -> None:
    settings.server.domains = [org.domain]
    settings.accounts.submission_hosts = [sim.MAIL_HOST]
    settings.accounts.security_address = security


async def run_wave(driver: sim.Driver, org: sim.Org, attacker: str, victims: list[str], qr: bool) -> tuple[WaveReport, list[sim.Sent]]:
    sent: list[sim.Sent] = []
    contained_index, contained_at, incident_id = 0, 0.0, ""
    first_at = time.time()
    for i, rcpt in enumerate(victims, 1):
        env = sim.internal_env(attacker, [rcpt])
        s = await driver.send(env, sim.fraud_mail(org, attacker, rcpt, qr=qr))
        sent.append(s)
        if s.incident is not None and not contained_index:
            contained_index, contained_at, incident_id = i, s.incident.opened_at, s.incident.id
    delivered_before = sum(1 for s in sent[:contained_index] if s.action in ("deliver", "tag"))
    held_after = sum(1 for s in sent[contained_index:] if s.action == "quarantine")
    detail = show_incident(driver.store, incident_id) if incident_id else None
    recalled = int(detail["recalled_copies"]) if detail else 0
    return WaveReport(first_at, contained_index, contained_at, delivered_before, held_after, incident_id, recalled), sent


def report(label: str, r: WaveReport, holders: list[str]) -> None:
    print(
        f"\n[{label}] contained after message {r.contained_index} of {N_COLLEAGUES} "
        f"({r.contained_at - r.first_at:.2f}s after the first fraudulent message); delivered before containment "
        f"{r.delivered_before}, recalled {r.recalled}, held after {r.held_after}; colleagues still holding it: {len(holders)}"
    )


@pytest.fixture
def maildir_org(settings: Settings) -> Iterator[tuple[sim.Org, Store]]:
    # The attacker's account and its 200 colleagues.
    org = sim.make_org([f"{sim.NAMES[i % 30].lower().replace(' ', '.')}{i}@victim-corp.com" for i in range(N_COLLEAGUES + 1)])
    configure(settings, org, "security@victim-corp.com")
    store = Store(settings.db_url, raw_dir=settings.raw_dir)
    sim.replay(store, settings, sim.normal_week(org, time.time() - 3600))
    yield org, store
    store.close()


@pytest.mark.parametrize("qr", [True, False], ids=["qr-wave", "lure-unknown-to-content-engines"])
async def test_wave_is_contained_and_recalled_maildir(settings: Settings, maildir_org: tuple[sim.Org, Store], qr: bool) -> None:
    org, store = maildir_org
    attacker = org.senders[3]
    victims = [c for c in org.colleagues if c != attacker]
    assert len(victims) == N_COLLEAGUES
    driver = sim.Driver(settings, store)
    try:
        # An ordinary account's large announcement, from its usual machine and name: not flagged.
        announcer = org.senders[1]
        ann = sim.internal_env(announcer, [c for c in org.colleagues if c != announcer])
        raw = sim.work_mail(org, announcer, ann.rcpt_tos, time.time(), "全员通知：本周五下午消防演练",
                            "各位同事：本周五下午三点进行消防演练，请听从各楼层负责人安排有序撤离。行政部")
        a = await driver.send(ann, raw)
        assert a.incident is None
        assert a.action == "deliver", a

        r, sent = await run_wave(driver, org, attacker, victims, qr)
    finally:
        driver.close()
    prefixes = {s.envelope.id for s in sent}
    holders = sim.maildir_holders(settings.mail_dir, org.colleagues, prefixes)
    report(f"maildir {'qr' if qr else 'unknown lure'}", r, holders)

    assert 1 <= r.contained_index <= 20, r
    assert all(s.action == "quarantine" for s in sent[r.contained_index:]), "mail after containment must be held"
    assert holders == []
    assert r.recalled == r.delivered_before
    if not qr:
        assert r.delivered_before >= 1  # the behaviour signals, not the content, found this one
    incidents = list_incidents(store)
    assert [i.account for i in incidents] == [attacker]
    inc = show_incident(store, r.incident_id)
    assert inc is not None and inc["held"] and inc["state"] == "open"
    assert any("new client IP" in x for x in inc["reasons"])
    assert inc["evidence"]["trigger"]["client_ip"] == sim.ATTACKER_IP
    assert inc["alerts"]["email"].endswith("delivered")
    assert len(inc["held_messages"]) >= N_COLLEAGUES - r.contained_index
    # The announcement is still in every mailbox.
    assert sim.maildir_holders(settings.mail_dir, [org.colleagues[0], org.colleagues[150]], {a.envelope.id}) == [
        org.colleagues[0], org.colleagues[150]]


@pytest.fixture(scope="module")
def dc() -> Iterator[DovecotServer]:
    with dovecot_server(N_COLLEAGUES + 2) as server:  # attacker, 200 colleagues, the security mailbox
        yield server


def dc_search(dc: DovecotServer, user: str, tid: str, *, recall_folder: bool) -> str:
    """doveadm search for one copy: in the folders the user sees, or in the hidden recall folder."""
    where = "MailmoatRecall/*" if recall_folder else "*"
    out = dc.doveadm("fetch", "-u", user, "mailbox", "mailbox", where, "header", "X-Mailmoat-Id", tid)
    return out.stdout.strip()


@pytest.mark.dovecot
async def test_wave_is_recalled_from_dovecot(dc: DovecotServer, tmp_path: Path) -> None:
    settings = Settings()
    settings.data_dir = str(tmp_path / "var")
    users = sorted(dc.users)
    org = sim.make_org(users[:-1])
    configure(settings, org, users[-1])
    settings.delivery.relay_to = dc.lmtp_url
    settings.recall.backend = "imap"
    settings.recall.imap.host, settings.recall.imap.port = "127.0.0.1", dc.imap_port
    settings.recall.imap.master_user, settings.recall.imap.master_password = dc.master_user, dc.master_password
    store = Store(settings.db_url, raw_dir=settings.raw_dir)
    sim.replay(store, settings, sim.normal_week(org, time.time() - 3600))
    attacker = org.senders[5]
    victims = [c for c in org.colleagues if c != attacker]
    assert len(victims) == N_COLLEAGUES
    driver = sim.Driver(settings, store)
    try:
        r, sent = await run_wave(driver, org, attacker, victims, qr=False)
    finally:
        driver.close()
    holders, hidden = [], 0
    for s in sent:
        for i, rcpt in enumerate(s.envelope.rcpt_tos):
            tid = s.envelope.tracking_id(i)
            if dc_search(dc, rcpt, tid, recall_folder=False):
                holders.append(rcpt)
            if s.action == "tag":
                hidden += bool(dc_search(dc, rcpt, tid, recall_folder=True))
    assert hidden == r.delivered_before  # each delivered copy now sits in the hidden recall folder
    report("dovecot imap", r, holders)
    assert 1 <= r.contained_index <= 20
    assert r.delivered_before >= 1
    assert r.recalled == r.delivered_before
    assert holders == []
    inc = show_incident(store, r.incident_id)
    assert inc is not None and inc["alerts"]["email"].endswith("delivered")  # through LMTP to Dovecot
    store.close()
