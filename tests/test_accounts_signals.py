"""Profiles learnt at explicit times and the signals computed from them."""

from __future__ import annotations

import time

import pytest

from mailmoat.accounts import profiles, signals
from mailmoat.config import Settings
from mailmoat.model import Direction, Envelope
from mailmoat.parse import parse
from mailmoat.store.db import Store
from tests.support import accountsim as sim

COLLEAGUES = [f"c{i:02d}@corp.test" for i in range(60)]


@pytest.fixture
def org_store(settings: Settings) -> tuple[sim.Org, Store]:
    org = sim.make_org(COLLEAGUES, n_senders=4)
    settings.server.domains = [org.domain]
    settings.accounts.submission_hosts = [sim.MAIL_HOST]
    store = Store(settings.db_url, raw_dir=settings.raw_dir)
    sim.replay(store, settings, sim.normal_week(org, time.time() - 3600))
    return org, store


def facts(settings: Settings, org: sim.Org, sender: str, rcpts: list[str], *, ip: str = "", name: str = "",
          body: str = "hello", at: float | None = None, direction: Direction = Direction.INTERNAL) -> profiles.Facts:
    at = time.time() if at is None else at
    env = Envelope(mail_from=sender, rcpt_tos=rcpts, received_at=at, direction=direction)
    f = profiles.facts_of(env, parse(sim.work_mail(org, sender, rcpts, at, "s", body, ip=ip, name=name)), settings)
    assert f is not None
    return f


def test_profile_learns_hours_ips_names_and_recipients(settings: Settings, org_store: tuple[sim.Org, Store]) -> None:
    org, store = org_store
    a = org.senders[0]
    with store.session() as s:
        p = profiles.get_profile(s, a)
        assert p is not None and p.messages >= 15
        assert list(p.ips) == [org.ips[a]]
        assert list(p.hosts) == [sim.MAIL_HOST]
        assert list(p.names) == [org.names[a]]
        assert set(p.recipients) <= set(org.peers[a])
        assert set(profiles.usual_hours(p)) <= set(range(1, 11))  # 09–18 in UTC+8


def test_usual_sender_is_quiet(settings: Settings, org_store: tuple[sim.Org, Store]) -> None:
    org, store = org_store
    a = org.senders[0]
    with store.session() as s:
        sig = signals.compute(s, settings, facts(settings, org, a, org.peers[a][:2]))
    assert not sig.anomalous and not sig.burst and not sig.fanout
    assert signals.judge(sig) == []


def test_new_ip_but_same_office_network_is_usual(settings: Settings, org_store: tuple[sim.Org, Store]) -> None:
    org, store = org_store
    a = org.senders[0]
    with store.session() as s:
        same_net = signals.compute(s, settings, facts(settings, org, a, ["c50@corp.test"], ip="10.1.0.99"))
        elsewhere = signals.compute(s, settings, facts(settings, org, a, ["c50@corp.test"], ip=sim.ATTACKER_IP))
    assert not same_net.new_ip
    assert elsewhere.new_ip and elsewhere.anomalous


def test_department_name_never_used_is_an_anomaly(settings: Settings, org_store: tuple[sim.Org, Store]) -> None:
    org, store = org_store
    a = org.senders[0]
    with store.session() as s:
        dept = signals.compute(s, settings, facts(settings, org, a, ["c50@corp.test"], name="财务部"))
        plain = signals.compute(s, settings, facts(settings, org, a, ["c50@corp.test"], name="Lina"))
    assert dept.new_name and dept.name_kind == "department" and dept.anomalous
    assert plain.new_name and plain.name_kind == "" and not plain.anomalous


@pytest.mark.parametrize("name", ["財務部", "财 务 部", "财.务.部 工资补贴", "人\u200b事\u200b部"])
def test_a_department_in_traditional_characters_or_written_apart_is_still_one(settings: Settings, name: str) -> None:
    """The stolen account's "財務部" or "财 务 部" is read as the impersonation checks read it."""
    assert signals.name_kind(name, settings) == "department"
    assert signals.name_kind("张某人 事务所", settings) == ""


def test_a_new_value_becomes_usual_only_after_learn_after(settings: Settings, org_store: tuple[sim.Org, Store]) -> None:
    org, store = org_store
    a = org.senders[0]
    t0 = time.time()
    with store.session() as s:
        profiles.learn(s, facts(settings, org, a, ["c50@corp.test"], ip="198.51.100.7", at=t0))
    with store.session() as s:
        soon = signals.compute(s, settings, facts(settings, org, a, ["c50@corp.test"], ip="198.51.100.7", at=t0 + 60))
        later = signals.compute(s, settings, facts(settings, org, a, ["c50@corp.test"], ip="198.51.100.7", at=t0 + 2 * 86400))
    assert soon.new_ip
    assert not later.new_ip


def test_burst_and_fanout_count_distinct_colleagues_in_the_window(settings: Settings, org_store: tuple[sim.Org, Store]) -> None:
    org, store = org_store
    a = org.senders[1]
    settings.accounts.burst_recipients = 12
    t0 = time.time()
    with store.session() as s:
        for i in range(11):
            f = facts(settings, org, a, [COLLEAGUES[10 + i]], body="same text", at=t0 + i)
            profiles.record_event(s, f, action="deliver", content_threat=False, new_ip=False, new_name=False)
    with store.session() as s:
        sig = signals.compute(s, settings, facts(settings, org, a, [COLLEAGUES[40]], body="same text", at=t0 + 20))
        outside = signals.compute(s, settings, facts(settings, org, a, [COLLEAGUES[40]], body="same text", at=t0 + 3600))
    assert sig.fanout_recipients == 12 and sig.fanout and "body" in sig.fanout_on
    assert sig.burst_recipients == 12 and sig.burst
    assert not sig.anomalous and signals.judge(sig) == []  # volume alone is an announcement
    assert outside.burst_recipients == 1 and not outside.fanout


def test_outbound_spam_relay_and_rate_limit(settings: Settings, org_store: tuple[sim.Org, Store]) -> None:
    org, store = org_store
    a = org.senders[2]
    settings.accounts.external_domains = 5
    settings.accounts.outbound_rate_per_hour = 8
    t0 = time.time()
    with store.session() as s:
        for i in range(6):
            f = facts(settings, org, a, [f"x@ext{i}.example"], at=t0 + i, direction=Direction.OUTBOUND)
            profiles.record_event(s, f, action="deliver", content_threat=False, new_ip=False, new_name=False)
    with store.session() as s:
        sig = signals.compute(s, settings, facts(settings, org, a, ["a@ext9.example", "b@ext9.example", "c@ext9.example"],
                                                 at=t0 + 10, direction=Direction.OUTBOUND))
    assert sig.external_domains == 7 and sig.spam_relay
    assert sig.outbound_recipients == 9 and sig.rate_limited


def test_trusted_hop_is_configurable(settings: Settings) -> None:
    raw = (b"Received: from gw ([10.9.9.9]) by relay.corp.test with ESMTP id 1; Tue, 10 Jun 2025 09:12:00 +0800\r\n"
           b"Received: from pc ([192.0.2.44]) by submit.corp.test with ESMTPSA id 2; Tue, 10 Jun 2025 09:11:59 +0800\r\n"
           b"From: A <a@corp.test>\r\nTo: b@corp.test\r\nSubject: x\r\n\r\nbody\r\n")
    msg = parse(raw)
    settings.server.domains = ["corp.test"]
    assert profiles.submission_hop(msg, settings) == ("10.9.9.9", "relay.corp.test")
    settings.accounts.trusted_hop = 1
    assert profiles.submission_hop(msg, settings) == ("192.0.2.44", "submit.corp.test")
    settings.accounts.submission_hosts = ["submit.corp.test"]
    settings.accounts.trusted_hop = 0
    assert profiles.submission_hop(msg, settings) == ("192.0.2.44", "submit.corp.test")


def test_inbound_and_foreign_senders_have_no_profile(settings: Settings) -> None:
    settings.server.domains = ["corp.test"]
    msg = parse(b"From: x@else.test\r\nTo: b@corp.test\r\nSubject: x\r\n\r\nbody\r\n")
    assert profiles.facts_of(Envelope(mail_from="x@else.test", rcpt_tos=["b@corp.test"]), msg, settings) is None
    env = Envelope(mail_from="x@else.test", rcpt_tos=["b@corp.test"], direction=Direction.INTERNAL)
    assert profiles.facts_of(env, msg, settings) is None
