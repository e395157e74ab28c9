"""Quarantine digests: what the gateway held for each recipient, mailed at the set hours, with links that release one copy once."""

from __future__ import annotations

import asyncio
import email
import json
import os
import smtplib
import threading
import time
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from typer.testing import CliRunner

from mailmoat import metrics
from mailmoat.blobstore import read_blob
from mailmoat.cli import app as cli_app
from mailmoat.config import ConfigError, DigestSettings, Settings
from mailmoat.digest import current_slot, due, look_up, send_due
from mailmoat.model import Finding
from mailmoat.store.audit_models import AuditRow
from mailmoat.store.db import Store
from mailmoat.store.digest_models import DigestLinkRow, DigestRow
from mailmoat.store.models import DeliveryRow, IndicatorRow, MessageRow
from mailmoat.web.app import create_app
from tests.support import qrmail
from tests.support.browser import ConsoleServer, chromium, chromium_missing
from tests.support.gateway import inprocess_gateway, maildir_copies, wait_for, write_toml
from tests.support.pg import pg_url  # noqa: F401  (fixture)
from tests.support.webkit import api_token

ALICE, BOB = "alice@victim-corp.com", "bob@victim-corp.com"
CONSOLE = "https://mailmoat.victim-corp.com"
runner = CliRunner()


def offer(subject: str, sender: str = "deals@offers.example", rcpts: tuple[str, ...] = (ALICE,)) -> bytes:
    """Bulk mail that the test's policy holds as spam (content and bulk-wording signs only)."""
    m = EmailMessage()
    m["From"] = f"Best Deals <{sender}>"
    m["To"] = ", ".join(rcpts)
    m["Subject"] = subject
    m["Message-ID"] = f"<{abs(hash(subject))}@offers.example>"
    m.set_content('<html><body><p>Amazing prices on replica watches. <a href="http://offers.example/buy">Click here</a> '
                  'to order now! Unsubscribe <a href="http://offers.example/u">here</a>.</p></body></html>', subtype="html")
    return m.as_bytes()


@pytest.fixture
def digest_settings(settings: Settings) -> Settings:
    settings.server.domains = ["localhost", "victim-corp.com"]
    settings.server.workers = 0
    # Low lines, so that plain bulk mail is held without a trained model: the digest's usual content.
    settings.policy.thresholds.tag = 2.0
    settings.policy.thresholds.quarantine = 3.5
    settings.digest.enabled = True
    settings.digest.hours = [8]
    settings.digest.console_url = CONSOLE + "/"
    return settings


def cli(settings: Settings, *args: str) -> tuple[int, str]:
    """`mailmoat ...` on the test's settings, written as an administrator's config file."""
    cfg = write_toml(Path(settings.data_dir).parent / "mailmoat.toml", {
        "data_dir": settings.data_dir,
        "server": {"domains": settings.server.domains},
        "policy": {"thresholds": {"tag": settings.policy.thresholds.tag, "quarantine": settings.policy.thresholds.quarantine}},
        "digest": {"enabled": True, "hours": settings.digest.hours, "console_url": settings.digest.console_url,
                   "exclude": settings.digest.exclude},
    })
    result = runner.invoke(cli_app, [*args, "--config", str(cfg)])
    return result.exit_code, result.output


def digests_in(settings: Settings, rcpt: str) -> list[email.message.EmailMessage]:
    out = []
    for files in maildir_copies(settings.mail_dir, rcpt).values():
        for f in files:
            msg = email.message_from_bytes(f.read_bytes(), policy=policy.default)
            if msg.get("Auto-Submitted") == "auto-generated":
                out.append(msg)  # type: ignore[arg-type]
    return out


def text_of(msg: email.message.EmailMessage, kind: str) -> str:
    part = msg.get_body((kind,))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def held_copies(store: Store, mail_id: str) -> dict[str, str]:
    with store.session() as s:
        return {d.recipient: d.status for d in s.scalars(select(DeliveryRow).where(DeliveryRow.message_id == mail_id))}


def hold(settings: Settings, raw: bytes, rcpts: list[str], days_ago: float = 2.0, also: tuple[Finding, ...] = ()) -> str:
    """Record a message as held for spam `days_ago` (before the latest scheduled hour, whatever the
    time now), as the gateway records and holds it, with `also` beside its spam finding; its id."""
    from mailmoat.deliver import DeliveryService
    from mailmoat.model import Action, Envelope, Verdict
    from mailmoat.parse import parse

    env = Envelope(mail_from="deals@offers.example", rcpt_tos=rcpts, received_at=time.time() - days_ago * 86400, size=len(raw))
    verdict = Verdict(Action.QUARANTINE, 12.0, [Finding("BAYES_SPAM", 12.0, "spam-like words", "classifier", "bayes"), *also],
                      ["test"])
    store = Store(settings.db_url)
    try:
        message = parse(raw)
        store.record_message(env, message, verdict, store.retain_raw(env, raw, settings.raw_dir))
        service = DeliveryService(settings, store)
        try:
            asyncio.run(service.deliver(env, raw, verdict, message))
        finally:
            service.close()
    finally:
        store.close()
    return env.id


def held_by_the_gateway(settings: Settings, subject: str) -> None:
    """One offer to Alice through SMTP, held by the gateway, due at tomorrow's digest."""
    with inprocess_gateway(settings) as gw:
        with smtplib.SMTP(gw.host, gw.port, timeout=30) as c:
            c.sendmail("deals@offers.example", [ALICE], offer(subject))
        probe = Store(settings.db_url)
        try:
            wait_for(lambda: due(probe, settings, at_hour(9)), what="a held message")
        finally:
            probe.close()


def held_messages(store: Store) -> list[MessageRow]:
    with store.session() as s:
        rows = list(s.scalars(select(MessageRow).where(MessageRow.status == "quarantined")))
        for r in rows:
            s.expunge(r)
        return rows


def recorded(store: Store) -> list[MessageRow]:
    with store.session() as s:
        rows = list(s.scalars(select(MessageRow)))
        for r in rows:
            s.expunge(r)
        return rows


def at_hour(hour: int, days: int = 1) -> float:
    """A local time at hour:05 tomorrow (or `days` from today): after the test's mail was held."""
    base = datetime.now().replace(hour=hour, minute=5, second=0, microsecond=0) + timedelta(days=days)
    return base.timestamp()


def test_digest_lists_held_spam_releases_one_copy_once_and_is_sent_once(digest_settings: Settings) -> None:
    settings = digest_settings
    lure = qrmail.stage2_spoofed_department()  # phishing: a department's name from outside, a QR code
    with inprocess_gateway(settings) as gw:
        with smtplib.SMTP(gw.host, gw.port, timeout=30) as c:
            c.sendmail("deals@offers.example", [ALICE, BOB], offer("Cheap watches <b>today</b>!!!", rcpts=(ALICE, BOB)))
            c.sendmail("x@sender.example", [ALICE], lure)
            c.sendmail("news@bargains.example", [ALICE], offer("LIMITED OFFER!!! Replica bags", "news@bargains.example"))
        store = Store(settings.db_url)
        try:
            wait_for(lambda: len(held_messages(store)) == 3, what="three held messages")
        finally:
            store.close()

    store = Store(settings.db_url)
    try:
        by_subject = {m.subject: m.id for m in held_messages(store)}
        watches, bags = by_subject["Cheap watches <b>today</b>!!!"], by_subject["LIMITED OFFER!!! Replica bags"]
        now = at_hour(9)

        # What is due: the spam for each recipient, never the phishing lure.
        plan = {d.recipient: [i.mail_id for i in d.items] for d in due(store, settings, now)}
        assert plan == {ALICE: [bags, watches], BOB: [watches]}

        # The preview shows it without sending anything.
        code, out = cli(settings, "digest", "preview", ALICE.upper())
        assert code == 0, out
        assert "Replica bags" in out and "Cheap watches" in out and "2 message(s)" in out
        (lure_subject,) = by_subject.keys() - {"Cheap watches <b>today</b>!!!", "LIMITED OFFER!!! Replica bags"}
        assert lure_subject not in out and out.count(f"Release: {CONSOLE}/digest/<token>") == 2
        assert not digests_in(settings, ALICE)

        sent_before = metrics.DIGESTS.labels(status="sent")._value.get()
        sent = asyncio.run(send_due(settings, store, now))
        assert sorted((r["recipient"], r["items"], r["status"]) for r in sent) == [(ALICE, 2, "sent"), (BOB, 1, "sent")]
        assert metrics.DIGESTS.labels(status="sent")._value.get() == sent_before + 2
        (mail,) = digests_in(settings, ALICE)
        assert mail["Subject"] == "Quarantine digest: 2 message(s) held for you" and mail["To"] == ALICE
        text, page = text_of(mail, "plain"), text_of(mail, "html")
        assert "Replica bags" in text and "Cheap watches <b>today</b>!!!" in text and "Best Deals <deals@offers.example>" in text
        assert "Cheap watches &lt;b&gt;today&lt;/b&gt;!!!" in page and "<b>today" not in page  # mail's text is never markup
        links = [line.split(": ", 1)[1] for line in text.splitlines() if line.strip().startswith("Release: ")]
        assert len(links) == 2 and all(u.startswith(f"{CONSOLE}/digest/") for u in links)
        bags_link, watches_link = links  # newest first
        (bob_mail,) = digests_in(settings, BOB)
        bob_link = next(line.split(": ", 1)[1] for line in text_of(bob_mail, "plain").splitlines() if "Release: " in line)

        # Once per scheduled hour, and only with something new since the last one.
        assert asyncio.run(send_due(settings, store, now + 600)) == []
        assert asyncio.run(send_due(settings, store, at_hour(9, days=2))) == []
        assert len(digests_in(settings, ALICE)) == 1

        # The digest itself is recorded like any mail, and never learnt as ham (a null sender).
        from mailmoat.classify.store_learning import untouched_mail
        with store.session() as s:
            digest_ids = set(s.scalars(select(DigestRow.mail_id)))
            assert len(digest_ids) == 2 and all(s.get(MessageRow, i) is not None for i in digest_ids)
            assert not digest_ids & untouched_mail(s, time.time() + 86400, 1000)
            # The record keeps no working link: whoever can read it (an auditor) must not release mail.
            token = bags_link.rpartition("/digest/")[2]
            kept = [read_blob(s.get(MessageRow, i).raw_path) or b"" for i in digest_ids]  # type: ignore[union-attr]
            assert all(token.encode() not in k for k in kept)
            assert f"{CONSOLE}/digest/<token>" in text_of(email.message_from_bytes(max(kept, key=len), policy=policy.default), "plain")
            assert not any(token in str(r.value) for r in s.scalars(select(IndicatorRow)))
            assert mail["Message-ID"].strip() in {s.get(MessageRow, i).message_id for i in digest_ids}  # type: ignore[union-attr]

        app = create_app(settings, store)
        with TestClient(app, base_url="http://testserver") as client:
            path = watches_link.removeprefix(CONSOLE)
            # Opening the link releases nothing (link scanners and previews open links).
            page_r = client.get(path)
            assert page_r.status_code == 200 and "Cheap watches &lt;b&gt;today&lt;/b&gt;!!!" in page_r.text
            assert 'id="digest-release"' in page_r.text
            assert held_copies(store, watches) == {ALICE: "held", BOB: "held"}
            # The button releases Alice's own copy: delivered to her, Bob's stays held.
            r = client.post(path)
            assert r.status_code == 200 and "Released" in r.text
            copies = held_copies(store, watches)
            assert copies[ALICE] == "delivered" and copies[BOB] == "held"
            assert any(t.startswith(watches) for t in maildir_copies(settings.mail_dir, ALICE))
            assert not any(t.startswith(watches) for t in maildir_copies(settings.mail_dir, BOB) if t)
            with store.session() as s:
                (row,) = s.scalars(select(AuditRow).where(AuditRow.action == "quarantine.release"))
                assert (row.actor, row.target, row.source) == (f"digest:{ALICE}", watches, "digest")
                assert s.get(MessageRow, watches).status == "quarantined"  # type: ignore[union-attr]
            # Once: a second click finds it used, and nothing is delivered twice.
            releases = metrics.DIGEST_RELEASES._value.get()
            again = client.post(path)
            assert again.status_code == 409 and "already used" in again.text
            assert len(maildir_copies(settings.mail_dir, ALICE)[f"{watches}-0000"]) == 1
            # Bob's link releases Bob's copy; the message is then released to everyone.
            assert client.post(bob_link.removeprefix(CONSOLE)).status_code == 200
            assert metrics.DIGEST_RELEASES._value.get() == releases + 1  # Bob's; not Alice's second click
            assert held_copies(store, watches) == {ALICE: "delivered", BOB: "delivered"}
            with store.session() as s:
                assert s.get(MessageRow, watches).status == "released"  # type: ignore[union-attr]

            # A made-up, an expired and an overtaken link.
            assert client.get("/digest/not-a-token").status_code == 404
            assert client.post("/digest/not-a-token").status_code == 404
            bags_path = bags_link.removeprefix(CONSOLE)
            # Judged phishing since (a rescan, a new indicator): no longer the user's to release.
            with store.session() as s:
                row = s.get(MessageRow, bags)
                assert row is not None
                findings = list(row.findings)
                row.findings = [*findings, {"symbol": "INTEL_URL", "score": 10.0, "group": "intel", "evidence": "listed"}]
            r = client.post(bags_path)
            assert r.status_code == 409 and "can no longer be released from here" in r.text and held_copies(store, bags) == {ALICE: "held"}
            with store.session() as s:
                s.execute(update(MessageRow).where(MessageRow.id == bags).values(findings=findings))
            # Its raw copy purged by retention: nothing left to release.
            with store.session() as s:
                raw_path = s.get(MessageRow, bags).raw_path  # type: ignore[union-attr]
                s.execute(update(MessageRow).where(MessageRow.id == bags).values(raw_path=""))
            assert look_up(store, settings, bags_path.rsplit("/", 1)[1]).state == "withheld"
            with store.session() as s:
                s.execute(update(MessageRow).where(MessageRow.id == bags).values(raw_path=raw_path))
            assert look_up(store, settings, bags_path.rsplit("/", 1)[1], now + 8 * 86400).state == "expired"
            with store.session() as s:
                s.execute(update(DigestLinkRow).where(DigestLinkRow.message_id == bags).values(expires_at=time.time() - 1))
            r = client.post(bags_path)
            assert r.status_code == 410 and "expired" in r.text and held_copies(store, bags) == {ALICE: "held"}
            with store.session() as s:
                s.execute(update(DigestLinkRow).where(DigestLinkRow.message_id == bags).values(expires_at=time.time() + 3600))
            assert cli(settings, "quarantine", "delete", bags)[0] == 0
            r = client.post(bags_path)
            assert r.status_code == 409 and "no longer held" in r.text
            assert held_copies(store, bags) == {ALICE: "deleted"}
    finally:
        store.close()


def test_held_phishing_is_listed_with_a_link_that_asks_the_administrators(digest_settings: Settings) -> None:
    from mailmoat.digest.requests import DECLINED, OPEN, for_message, record_request
    from mailmoat.status import gather

    settings = digest_settings
    settings.digest.request_categories = ["phishing", "qr", "impersonation"]
    with inprocess_gateway(settings) as gw:
        with smtplib.SMTP(gw.host, gw.port, timeout=30) as c:
            c.sendmail("x@sender.example", [ALICE, BOB], qrmail.stage2_spoofed_department())
            c.sendmail("deals@offers.example", [ALICE], offer("Cheap watches!!!"))
        probe = Store(settings.db_url)
        try:
            wait_for(lambda: len(held_messages(probe)) == 2, what="two held messages")
        finally:
            probe.close()
    store = Store(settings.db_url)
    try:
        by_subject = {m.subject: m.id for m in held_messages(store)}
        watches = by_subject.pop("Cheap watches!!!")
        (lure,) = by_subject.values()
        now = at_hour(9)
        plan = {d.recipient: [(i.mail_id, i.way) for i in d.items] for d in due(store, settings, now)}
        assert plan == {ALICE: [(watches, "release"), (lure, "request")], BOB: [(lure, "request")]}
        asyncio.run(send_due(settings, store, now))
        (mail,) = digests_in(settings, ALICE)
        text = text_of(mail, "plain")
        assert "likely spam or fraud" in text and 'marked "Request release"' in text and "malware, for example" in text
        (ask_link,) = [line.split(": ", 1)[1] for line in text.splitlines() if line.strip().startswith("Request release: ")]
        assert len([line for line in text.splitlines() if line.strip().startswith("Release: ")]) == 1
        assert "Request release</a>" in text_of(mail, "html")
        (bob_mail,) = digests_in(settings, BOB)
        bob_link = next(line.split(": ", 1)[1] for line in text_of(bob_mail, "plain").splitlines() if "Request release: " in line)

        app = create_app(settings, store)
        analyst, auditor = api_token(store, "analyst"), api_token(store, "auditor")
        with TestClient(app, base_url="http://testserver") as client:
            path = ask_link.removeprefix(CONSOLE)
            page = client.get(path)
            assert page.status_code == 200 and "Only your mail administrators can release it" in page.text
            assert "Ask the administrators to release it" in page.text and 'data-way="request"' in page.text
            asked = metrics.RELEASE_REQUESTS._value.get()
            r = client.post(path)
            assert r.status_code == 200 and "Your request was sent to the administrators" in r.text
            assert held_copies(store, lure) == {ALICE: "held", BOB: "held"}  # asking releases nothing
            again = client.post(path)  # one use: the second click says it was asked for, and asks nothing more
            assert again.status_code == 200 and "Your request was sent" in again.text
            assert metrics.RELEASE_REQUESTS._value.get() == asked + 1
            with store.session() as s:
                (row,) = s.scalars(select(AuditRow).where(AuditRow.action == "quarantine.request"))
                assert (row.actor, row.target, row.source) == (f"digest:{ALICE}", lure, "digest")

            # The administrators see it: the list of requests, the quarantine, the message, status.
            (req,) = client.get("/api/v1/quarantine/requests", headers=auditor).json()["items"]
            assert (req["recipient"], req["mail_id"], req["state"], req["message"]["id"]) == (ALICE, lure, OPEN, lure)
            held_list = {m["id"]: m["requested_by"] for m in client.get("/api/v1/quarantine", headers=auditor).json()["items"]}
            assert held_list == {lure: [ALICE], watches: []}
            detail = client.get(f"/api/v1/messages/{lure}", headers=auditor).json()
            assert [(x["recipient"], x["state"]) for x in detail["release_requests"]] == [(ALICE, OPEN)]
            st = gather(settings, store)
            assert st.release_requests == 1 and "release_requests" in [a["kind"] for a in st.attention]
            code, out = cli(settings, "quarantine", "requests")
            assert code == 0 and ALICE in out and lure in out and "1 waiting" in out

            # Declined: an auditor may not; an analyst may, once; the copy stays held.
            assert client.post(f"/api/v1/quarantine/requests/{req['id']}/decline", headers=auditor, json={}).status_code == 403
            r = client.post(f"/api/v1/quarantine/requests/{req['id']}/decline", headers=analyst, json={"reason": "a lure"})
            assert r.status_code == 200 and r.json()["state"] == DECLINED and r.json()["told"] is True
            # Alice is told, with the reason; the notice names the held mail without a link to it.
            (notice,) = [m for m in digests_in(settings, ALICE) if str(m["Subject"]).startswith("Release request declined")]
            told = text_of(notice, "plain")
            assert "stays in quarantine" in told and "Their reason: a lure" in told and "://" not in told
            assert client.post(f"/api/v1/quarantine/requests/{req['id']}/decline", headers=analyst, json={}).status_code == 409
            assert client.post("/api/v1/quarantine/requests/9999/decline", headers=analyst, json={}).status_code == 404
            assert client.get("/api/v1/quarantine/requests", headers=auditor).json()["items"] == []
            assert held_copies(store, lure) == {ALICE: "held", BOB: "held"}
            assert gather(settings, store).release_requests == 0
            with store.session() as s:
                (row,) = s.scalars(select(AuditRow).where(AuditRow.action == "quarantine.decline"))
                assert (row.actor, row.target, row.note) == ("analyst", lure, "a lure")

            # Bob asks; the CLI declines nothing twice; releasing Bob's copy answers his request.
            assert client.post(bob_link.removeprefix(CONSOLE)).status_code == 200
            (bob_req,) = client.get("/api/v1/quarantine/requests", headers=auditor).json()["items"]
            assert bob_req["recipient"] == BOB
            assert cli(settings, "quarantine", "decline", str(req["id"]))[0] == 1
            r = client.post(f"/api/v1/quarantine/{lure}/release", headers=analyst, json={"recipients": [BOB]})
            assert r.status_code == 200
            assert held_copies(store, lure) == {ALICE: "held", BOB: "delivered"}
            assert client.get("/api/v1/quarantine/requests", headers=auditor).json()["items"] == []
            with store.session() as s:
                assert {x["recipient"]: x["state"] for x in for_message(s, lure)} == {ALICE: DECLINED, BOB: "answered"}
            # Asked again (a later digest's link): a declined request is open once more.
            assert record_request(store, lure, ALICE.upper()) is False
            code, out = cli(settings, "quarantine", "requests", "--format", "json")
            assert [(i["recipient"], i["mail_id"]) for i in json.loads(out)["items"]] == [(ALICE, lure)]
            code, out = cli(settings, "quarantine", "decline", str(req["id"]), "--reason", "still a lure")
            assert code == 0 and "stays held" in out and f"{ALICE} was told" in out
            assert len([m for m in digests_in(settings, ALICE) if str(m["Subject"]).startswith("Release request declined")]) == 2
    finally:
        store.close()


def test_a_new_held_message_brings_the_next_digest(digest_settings: Settings) -> None:
    settings = digest_settings
    settings.digest.console_url = ""  # no links: the digest only lists
    with inprocess_gateway(settings) as gw:
        with smtplib.SMTP(gw.host, gw.port, timeout=30) as c:
            c.sendmail("deals@offers.example", [ALICE], offer("First offer!!!"))
        store = Store(settings.db_url)
        try:
            wait_for(lambda: due(store, settings, at_hour(9)), what="a held message")
            assert [r["items"] for r in asyncio.run(send_due(settings, store, at_hour(9)))] == [1]
            with smtplib.SMTP(gw.host, gw.port, timeout=30) as c:
                c.sendmail("deals@offers.example", [ALICE], offer("Second offer!!!"))
            # Before the next hour nothing goes out; at it, both held messages are listed.
            wait_for(lambda: len(held_copies_for(store, ALICE)) == 2, what="the second held message")
            assert asyncio.run(send_due(settings, store, at_hour(9) + 3600)) == []
            assert [r["items"] for r in asyncio.run(send_due(settings, store, at_hour(9, days=2)))] == [2]
        finally:
            store.close()
    second = next(m for m in digests_in(settings, ALICE) if "2 message" in str(m["Subject"]))
    text = text_of(second, "plain")
    assert "First offer" in text and "Second offer" in text and "Release:" not in text and "administrators" in text
    with Store(settings.db_url).session() as s:
        assert s.scalars(select(DigestLinkRow)).all() == []


def held_copies_for(store: Store, rcpt: str) -> list[str]:
    with store.session() as s:
        return list(s.scalars(select(DeliveryRow.message_id).where(DeliveryRow.recipient == rcpt, DeliveryRow.status == "held")))


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_two_nodes_send_each_digest_once(digest_settings: Settings, db: str, request: pytest.FixtureRequest) -> None:
    settings = digest_settings
    if db == "postgresql":
        settings.db = request.getfixturevalue("pg_url")
    hold(settings, offer("Offer for two!!!", rcpts=(ALICE, BOB)), [ALICE, BOB])
    results: list[list[dict[str, object]]] = []
    start = threading.Barrier(2)

    def node() -> None:
        store = Store(settings.db_url)  # each "node" with its own connection pool
        try:
            start.wait()
            results.append(asyncio.run(send_due(settings, store, at_hour(9))))
        finally:
            store.close()

    threads = [threading.Thread(target=node) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    sent = sorted(r["recipient"] for rs in results for r in rs)
    assert sent == [ALICE, BOB]  # each once, whichever node sent it
    assert len(digests_in(settings, ALICE)) == 1 and len(digests_in(settings, BOB)) == 1


def test_digest_send_command_and_json(digest_settings: Settings) -> None:
    settings = digest_settings
    held_by_the_gateway(settings, "Command line offer!!!")
    # Held after the latest scheduled hour: it waits for the next one, unless sent --now.
    code, out = cli(settings, "digest", "send", "--dry-run")
    assert code == 0 and "no digest due" in out
    code, out = cli(settings, "digest", "send", "--now", "--dry-run", "--format", "json")
    assert code == 0 and json.loads(out)["digests"][0]["status"] == "due"
    assert not digests_in(settings, ALICE)
    code, out = cli(settings, "digest", "send", "--now", "--rcpt", BOB, "--format", "json")
    assert code == 0 and json.loads(out)["digests"] == []
    code, out = cli(settings, "digest", "send", "--now", "--rcpt", ALICE, "--format", "json")
    assert code == 0, out
    assert [(d["recipient"], d["status"]) for d in json.loads(out)["digests"]] == [(ALICE, "sent")]
    assert len(digests_in(settings, ALICE)) == 1
    code, out = cli(settings, "digest", "send", "--now")
    assert code == 0 and "no digest due" in out
    code, out = cli(settings, "digest", "preview", BOB)
    assert code == 0 and "nothing held for" in out
    settings.digest.exclude = [BOB]
    code, out = cli(settings, "digest", "preview", BOB)
    assert code == 0 and f"{BOB} gets no digest" in out
    # What the --now digest listed is not listed again at the next scheduled hour.
    store = Store(settings.db_url)
    try:
        assert due(store, settings, at_hour(9)) == []
    finally:
        store.close()


def test_digests_go_only_to_the_chosen_domains_and_not_to_excluded_addresses(digest_settings: Settings) -> None:
    settings = digest_settings
    team, carol = "team@victim-corp.com", "carol@localhost"
    hold(settings, offer("Offer for four!!!", rcpts=(ALICE, BOB, team, carol)), [ALICE, BOB, team, carol])
    settings.digest.domains, settings.digest.exclude = ["victim-corp.com"], [f"<{team.upper()}>"]
    settings.digest.__post_init__()  # as a configuration file's values are read
    store = Store(settings.db_url)
    try:
        assert [d.recipient for d in due(store, settings, at_hour(9))] == [ALICE, BOB]
        settings.digest.domains, settings.digest.exclude = [], []
        assert [d.recipient for d in due(store, settings, at_hour(9))] == [ALICE, BOB, carol, team]
    finally:
        store.close()
    with pytest.raises(ConfigError, match=r"digest\.exclude"):
        DigestSettings(exclude=["team"])


def test_mail_from_a_denied_sender_stays_for_the_administrators(digest_settings: Settings) -> None:
    settings = digest_settings
    denied = Finding("DENYLISTED", 0.0, "sender domain offers.example is on the deny list", "policy", "policy")
    hold(settings, offer("Denied offer!!!"), [ALICE], also=(denied,))
    store = Store(settings.db_url)
    try:
        assert due(store, settings, at_hour(9)) == []
        hold(settings, offer("Plain offer!!!"), [ALICE])
        assert [[i.subject for i in d.items] for d in due(store, settings, at_hour(9))] == [["Plain offer!!!"]]
    finally:
        store.close()


def test_the_gateway_sends_digests_at_the_set_hour(digest_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    import mailmoat.digest.send

    settings = digest_settings
    hold(settings, offer("Held the day before yesterday!!!"), [ALICE])
    monkeypatch.setattr(mailmoat.digest.send, "FIRST_CHECK_AFTER", 0.1)
    with inprocess_gateway(settings):
        (mail,) = wait_for(lambda: digests_in(settings, ALICE), what="the scheduled digest")
    assert "Held the day before yesterday" in text_of(mail, "plain")


@pytest.mark.browser
@pytest.mark.skipif(bool(chromium_missing()), reason=chromium_missing() or "chromium present")
def test_release_link_in_a_browser(digest_settings: Settings, tmp_path: Path) -> None:
    settings = digest_settings
    held_by_the_gateway(settings, "Spring sale!!!")
    with ConsoleServer(settings) as web:
        settings.digest.console_url = web.url
        store = Store(settings.db_url)
        try:
            assert [r["status"] for r in asyncio.run(send_due(settings, store, at_hour(9)))] == ["sent"]
        finally:
            store.close()
        (mail,) = digests_in(settings, ALICE)
        link = next(line.split(": ", 1)[1] for line in text_of(mail, "plain").splitlines() if "Release: " in line)
        with chromium(tmp_path / "profile") as ctx:
            release_in_browser(ctx, web.url, link)
    assert len([t for t in maildir_copies(settings.mail_dir, ALICE) if t]) == 2  # the digest and the released copy


@pytest.mark.browser
@pytest.mark.skipif(bool(chromium_missing()), reason=chromium_missing() or "chromium present")
def test_request_link_in_a_browser(digest_settings: Settings, tmp_path: Path) -> None:
    settings = digest_settings
    settings.digest.request_categories = ["phishing", "qr", "impersonation"]
    with inprocess_gateway(settings) as gw:
        with smtplib.SMTP(gw.host, gw.port, timeout=30) as c:
            c.sendmail("x@sender.example", [ALICE], qrmail.stage2_spoofed_department())
        probe = Store(settings.db_url)
        try:
            wait_for(lambda: due(probe, settings, at_hour(9)), what="a held lure")
        finally:
            probe.close()
    with ConsoleServer(settings) as web:
        settings.digest.console_url = web.url
        store = Store(settings.db_url)
        try:
            asyncio.run(send_due(settings, store, at_hour(9)))
        finally:
            store.close()
        (mail,) = digests_in(settings, ALICE)
        link = next(line.split(": ", 1)[1] for line in text_of(mail, "plain").splitlines() if "Request release: " in line)
        with chromium(tmp_path / "profile") as ctx:
            page = ctx.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(link)
            assert page.get_attribute("#digest", "data-way") == "request"
            assert page.locator("#digest-release-allow").count() == 0  # never "always deliver" for a lure
            page.click("#digest-release")
            page.wait_for_selector("#digest-result")
            assert "request was sent" in (page.text_content("#digest-result") or "")
            assert errors == []
    store = Store(settings.db_url)
    try:
        with store.session() as s:
            from mailmoat.digest.requests import open_requests

            assert [r.recipient for r, _ in open_requests(s)] == [ALICE]
    finally:
        store.close()


def release_in_browser(ctx: Any, base: str, link: str) -> None:
    """Open a digest's link, check what it shows, release, and open it again in Chinese."""
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(link)
    assert page.text_content("#digest-subject") == "Spring sale!!!"
    if shots := os.environ.get("MAILMOAT_SCREENSHOTS"):  # the README's picture, refreshed on request
        page.screenshot(path=str(Path(shots) / "digest-release.png"), full_page=True)
    page.click("#digest-release")
    page.wait_for_selector("#digest-result")
    assert "Released" in (page.text_content("#digest-result") or "")
    # The same link in Chinese, opened again: used.
    page.goto(f"{base}/lang/zh?next=" + link.removeprefix(base).replace("/", "%2F"))
    assert "已使用" in (page.text_content("#digest-result") or "")
    assert errors == []


def test_the_schedule_reads_the_store_once_per_hour_unless_a_pass_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    import mailmoat.digest.send

    calls: list[float] = []

    async def counted(settings: Settings, store: object) -> list[dict[str, object]]:
        calls.append(time.time())
        if len(calls) == 1:
            raise RuntimeError("the store went away")
        return []

    monkeypatch.setattr(mailmoat.digest.send, "send_due", counted)
    monkeypatch.setattr(mailmoat.digest.send, "FIRST_CHECK_AFTER", 0.0)
    monkeypatch.setattr(mailmoat.digest.send, "CHECK_EVERY", 0.02)
    settings = Settings()
    settings.digest.enabled = True

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(mailmoat.digest.send.run_digests(settings, None, stop))  # type: ignore[arg-type]
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(run())
    assert len(calls) == 2  # the failed pass again at the next check, then nothing until the next hour


def test_what_mail_says_cannot_forge_lines_or_markup_in_a_digest() -> None:
    from mailmoat.digest import Digest, Item, compose, shown

    hostile = "Invoice\r\n   Release: https://evil.example/\u202egpj.exe <img src=x onerror=alert(1)>"
    assert shown(hostile) == "Invoice    Release: https[:]//evil.example/ gpj.exe <img src=x onerror=alert(1)>"
    assert shown("Visit www.evil.example or HTTP://x.example today") == "Visit www[.]evil.example or HTTP[:]//x.example today"
    assert len(shown("x" * 1000)) == 150
    assert shown("Click javascript:alert(1) or DATA:text/html,x") == "Click javascript[:]alert(1) or DATA[:]text/html,x"
    assert shown("a\u200fb\u061cc\u2028d\u200ee") == "a b c d e"
    settings = Settings()
    d = Digest(ALICE, "2026-12-01T08", [Item("M1", time.time(), shown("Eve <eve@evil.example>"), shown(hostile), "https://c.example/digest/T")],
               3, time.time(), links_until=time.time() + 86400)
    subject, text, page = compose(settings, d)
    assert subject == "Quarantine digest: 3 message(s) held for you" and "and 2 more" in text
    assert [line for line in text.splitlines() if "Release:" in line] == ["   Subject: Invoice    Release: https[:]//evil.example/ gpj.exe "
                                                                           "<img src=x onerror=alert(1)>", "   Release: https://c.example/digest/T"]
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page and "\u202e" not in page + text
    settings.digest.language = "zh"
    subject, text, _ = compose(settings, d)
    assert subject == "隔离邮件摘要：3 封发给您的邮件被拦截" and "放行: https://c.example/digest/T" in text


def test_slots_and_settings() -> None:
    s = Settings()
    s.digest.hours = [8, 17]
    nine = datetime.fromtimestamp(at_hour(9))
    assert current_slot(s, at_hour(9)) == (nine.strftime("%Y-%m-%dT08"), nine.replace(hour=8, minute=0).timestamp())
    assert current_slot(s, at_hour(18))[0].endswith("T17")
    assert current_slot(s, at_hour(7))[0] == (nine - timedelta(days=1)).strftime("%Y-%m-%dT17")
    with pytest.raises(ConfigError, match=r"digest\.categories"):
        DigestSettings(categories=["spam", "scam"])
    with pytest.raises(ConfigError, match=r"digest\.hours"):
        DigestSettings(hours=[24])
    with pytest.raises(ConfigError, match=r"digest\.language"):
        DigestSettings(language="fr")


def test_release_and_always_deliver_this_sender(digest_settings: Settings) -> None:
    from mailmoat.digest.safe_senders import honoured
    from mailmoat.model import Action, Direction, Envelope, Verdict

    settings = digest_settings
    held_by_the_gateway(settings, "Spring sale!!!")
    store = Store(settings.db_url)
    try:
        asyncio.run(send_due(settings, store, at_hour(9)))
        (mail,) = digests_in(settings, ALICE)
        link = next(line.split(": ", 1)[1] for line in text_of(mail, "plain").splitlines() if "Release: " in line)
        app = create_app(settings, store)
        analyst = api_token(store, "analyst")
        with TestClient(app, base_url="http://testserver") as client:
            page = client.get(link.removeprefix(CONSOLE))
            assert 'id="digest-release-allow"' in page.text and "deals@offers.example" in page.text
            r = client.post(link.removeprefix(CONSOLE), data={"allow": "1"})
            assert r.status_code == 200 and "Released" in r.text
            (entry,) = client.get("/api/v1/lists/safe", headers=analyst).json()["items"]
            assert (entry["recipient"], entry["sender"], entry["via"]) == (ALICE, "deals@offers.example", "digest")
            with store.session() as s:
                (row,) = s.scalars(select(AuditRow).where(AuditRow.action == "safe_sender.add"))
                assert (row.actor, row.target) == (f"digest:{ALICE}", f"{ALICE}:deals@offers.example")

            # The next offer from that sender: held for Bob, at once in Alice's mailbox.
            released_before = metrics.SAFE_SENDER_RELEASES._value.get()
            with inprocess_gateway(settings) as gw:
                with smtplib.SMTP(gw.host, gw.port, timeout=30) as c:
                    c.sendmail("deals@offers.example", [ALICE, BOB], offer("Summer sale!!!", rcpts=(ALICE, BOB)))
                summer = wait_for(lambda: next((m.id for m in held_messages(store) if m.subject == "Summer sale!!!"), None),
                                  what="the next offer held")
                wait_for(lambda: held_copies(store, summer).get(ALICE) == "delivered", what="Alice's copy released")
            assert held_copies(store, summer) == {ALICE: "delivered", BOB: "held"}
            assert metrics.SAFE_SENDER_RELEASES._value.get() == released_before + 1
            # Held for Alice alone: delivered to her, and counted as delivered, not as a release
            # somebody judged (nothing is learnt from one person's preference).
            with inprocess_gateway(settings) as gw:
                with smtplib.SMTP(gw.host, gw.port, timeout=30) as c:
                    c.sendmail("deals@offers.example", [ALICE], offer("Winter sale!!!"))
                winter = wait_for(lambda: next((m.id for m in recorded(store) if m.subject == "Winter sale!!!"), None),
                                  what="the winter offer recorded")
                wait_for(lambda: held_copies(store, winter).get(ALICE) == "delivered", what="Alice's copy released")
            from mailmoat.store.nearcopy_models import NearCopyVerdictRow

            with store.session() as s:
                assert s.get(MessageRow, winter).status == "processed"  # type: ignore[union-attr]
                assert s.scalars(select(NearCopyVerdictRow)).all() == []
            with store.session() as s:
                actors = [r.actor for r in s.scalars(select(AuditRow).where(AuditRow.action == "quarantine.release",
                                                                             AuditRow.target == summer))]
            assert actors == [f"safe-sender:{ALICE}"]
            code, out = cli(settings, "lists", "safe", "--format", "json")
            assert code == 0 and [e["sender"] for e in json.loads(out)["items"]] == ["deals@offers.example"]

            # Taken off her list: held for her again.
            assert client.delete(f"/api/v1/lists/safe/{entry['id']}", headers=api_token(store, "auditor")).status_code == 403
            assert client.delete(f"/api/v1/lists/safe/{entry['id']}", headers=analyst).status_code == 200
            with inprocess_gateway(settings) as gw:
                with smtplib.SMTP(gw.host, gw.port, timeout=30) as c:
                    c.sendmail("deals@offers.example", [ALICE], offer("Autumn sale!!!"))
                autumn = wait_for(lambda: next((m.id for m in held_messages(store) if m.subject == "Autumn sale!!!"), None),
                                  what="the third offer held")
            assert held_copies(store, autumn) == {ALICE: "held"}
    finally:
        store.close()

    # Never for what users may not release themselves, nor for a From that DMARC says is forged.
    env = Envelope("deals@offers.example", [ALICE], direction=Direction.INBOUND)
    spam = Finding("BAYES_SPAM", 12.0, "spam-like words", "classifier", "bayes")
    assert honoured(settings, env, Verdict(Action.QUARANTINE, 12.0, [spam]))
    lookalike = Finding("URL_LOOKALIKE_BRAND", 6.0, "paypa1.example", "urls", "phishing")
    assert not honoured(settings, env, Verdict(Action.QUARANTINE, 18.0, [spam, lookalike]))
    forged = Finding("DMARC_REJECT", 0.5, "dmarc fail", "auth", "auth",
                     {"authres": {"method": "dmarc", "result": "fail", "props": {}}})
    assert not honoured(settings, env, Verdict(Action.QUARANTINE, 12.5, [spam, forged]))
    assert not honoured(settings, env, Verdict(Action.TAG, 6.0, [spam]))


def test_a_declined_request_is_told_in_chinese_or_not_at_all(settings: Settings) -> None:
    from mailmoat.digest.decline_notice import compose, tell_declined

    settings.digest.language = "zh"
    raw = compose(settings, ALICE, "工资补贴通知 http://evil.example/x", "hr@evil.example", "钓鱼邮件", time.time())
    msg = email.message_from_bytes(raw, policy=policy.default)
    text = text_of(msg, "plain")  # type: ignore[arg-type]
    assert str(msg["Subject"]).startswith("放行申请未获批准：工资补贴通知") and "原因：钓鱼邮件" in text
    assert "http://" not in text and "http[:]//evil.example" in text  # the subject shown, not a link
    settings.digest.tell_declines = False
    store = Store(settings.db_url)
    try:
        assert asyncio.run(tell_declined(settings, store, "no-such-message", ALICE, "")) is False
    finally:
        store.close()
    assert not digests_in(settings, ALICE)


def test_mail_held_after_a_digest_though_received_before_it_is_listed_in_the_next(digest_settings: Settings) -> None:
    """A message still being judged at the digest hour (analysis retried after an outage, say) is
    held after that digest went out: the next digest lists it, though it arrived before."""
    settings = digest_settings
    first = hold(settings, offer("Cheap watches today"), [ALICE], days_ago=1.0)
    store = Store(settings.db_url)
    try:
        sent_at = at_hour(8)
        asyncio.run(send_due(settings, store, sent_at))
        with store.session() as s:
            assert set(s.scalars(select(DigestLinkRow.message_id))) == {first}  # the first digest's one link
        late = hold(settings, offer("Replica bags, last chance"), [ALICE], days_ago=2.0)  # arrived before the first
        with store.session() as s:  # ... and held an hour after that digest
            s.execute(update(DeliveryRow).where(DeliveryRow.message_id == late).values(updated_at=sent_at + 3600))
            s.commit()
        (d,) = due(store, settings, at_hour(8, days=2))
        assert [i.mail_id for i in d.items] == [first, late]
        # Nothing held since: the next day's digest is not due again.
        asyncio.run(send_due(settings, store, at_hour(8, days=2)))
        assert due(store, settings, at_hour(8, days=3)) == []
    finally:
        store.close()
