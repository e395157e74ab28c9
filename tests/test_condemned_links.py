"""Condemned destinations: later mail linking a new domain, page or form that mail condemned here led to."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from mailmoat.analyzers import condemned_links
from mailmoat.analyzers.base import AnalysisContext, AnalyzerEnv
from mailmoat.analyzers.condemned_links import CondemnedLinkAnalyzer
from mailmoat.config import Settings
from mailmoat.model import Action, Direction, Envelope, Finding, Verdict
from mailmoat.parse import parse
from mailmoat.recall.auto import condemn_message
from mailmoat.recall.engine import RecallEngine
from mailmoat.store.db import Store
from mailmoat.store.models import DeliveryRow, MessageRow
from mailmoat.store.recall_models import RecallCopyRow, RecallJobRow
from mailmoat.urlcheck import history
from tests.support.pg import pg_url  # noqa: F401  (fixture)

ORG = "acme-corp.cn"
HOUR = 3600.0
DAY = 24 * HOUR
LURE = "https://payroll-verify-2026.top/login?u={n}"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared settings, with this organisation's own domain."""
    settings.server.domains = [ORG]
    return settings


def _raw(frm: str, links: list[str], subject: str = "Salary adjustment", n: int = 0) -> bytes:
    body = "".join(f'<p><a href="{link}">open</a></p>' for link in links)
    return (
        f"From: Payroll <{frm}>\r\nTo: wang@{ORG}\r\nSubject: {subject}\r\nMessage-ID: <c{n}.{frm}>\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()


def _record(store: Store, frm: str, links: list[str], when: float, n: int = 0, subject: str = "Salary adjustment") -> str:
    env = Envelope(frm, [f"wang@{ORG}"], received_at=when)
    store.record_message(env, parse(_raw(frm, links, subject, n)), Verdict(Action.DELIVER, 0.0))
    return env.id


def _history(store: Store, now: float, days: int = 20) -> None:
    """A site's everyday mail: partners' newsletters, sent through a mail service's click tracker."""
    for i in range(200):
        partner = f"partner{i % 7}.example"
        link = "https://click.mailservice.example/t/abc" if i % 2 else f"https://www.{partner}/orders"
        _record(store, f"sales@{partner}", [link], now - days * DAY + i * HOUR, n=i)


def _recall(store: Store, mail_id: str, trigger: str = "manual", state: str = "done", when: float | None = None) -> str:
    job_id = f"01JOB{uuid.uuid4().hex[:21].upper()}"
    with store.session() as s:
        s.add(RecallJobRow(id=job_id, created_at=when or time.time(), state=state, trigger=trigger))
        s.add(RecallCopyRow(job_id=job_id, message_id=mail_id, tracking_id=f"{mail_id}-0000",
                            recipient=f"wang@{ORG}", mailbox=f"wang@{ORG}", state="recalled"))
        s.commit()
    return job_id


def _release(store: Store, mail_id: str) -> None:
    """What releasing a message from quarantine leaves in its record."""
    with store.session() as s:
        s.get_one(MessageRow, mail_id).status = "released"
        s.commit()


async def _scan(store: Store, settings: Settings, frm: str, links: list[str], now: float,
                direction: Direction = Direction.INBOUND, mail_id: str = "") -> Finding | None:
    an = CondemnedLinkAnalyzer(AnalyzerEnv(settings=settings, store=store))
    env = Envelope(frm, [f"wang@{ORG}"], received_at=now, direction=direction)
    if mail_id:
        env.id = mail_id
    ctx = AnalysisContext(message=parse(_raw(frm, links, "Your account", 99)), envelope=env, settings=settings)
    got = {f.symbol: f for f in await an.analyze(ctx)}
    return got.get("LINK_CONDEMNED_DESTINATION")


async def test_a_recalled_lure_condemns_the_new_domain_it_linked(store: Store, settings: Settings) -> None:
    now = time.time()
    _history(store, now)
    # The lure links its own new domain beside the brand it imitates and a click tracker this site
    # has seen for weeks; only the new domain is the attacker's.
    lure = _record(store, "payroll@hr-notice.example", [LURE.format(n=1), "https://www.microsoft.com/privacy",
                                                         "https://click.mailservice.example/t/xyz"], now - 2 * HOUR)
    assert await _scan(store, settings, "it@other-sender.example", [LURE.format(n=2)], now) is None  # not condemned yet
    job = _recall(store, lure)
    hit = await _scan(store, settings, "it@other-sender.example", [LURE.format(n=2)], now)
    assert hit is not None and hit.score == 7.0 and hit.data["domain"] == "payroll-verify-2026.top"
    assert "'Salary adjustment' from payroll@hr-notice.example" in hit.evidence and f"recalled by job {job} (manual)" in hit.evidence
    for other in ("https://www.microsoft.com/account", "https://click.mailservice.example/t/other"):
        assert await _scan(store, settings, "it@other-sender.example", [other], now) is None
    # Not for mail leaving the site or between colleagues, nor for the condemned message itself.
    assert await _scan(store, settings, f"li@{ORG}", [LURE.format(n=3)], now, Direction.OUTBOUND) is None
    assert await _scan(store, settings, f"li@{ORG}", [LURE.format(n=3)], now, Direction.INTERNAL) is None
    assert await _scan(store, settings, "payroll@hr-notice.example", [LURE.format(n=1)], now, mail_id=lure) is None


async def test_a_condemned_message_judged_again_is_marked_by_another(store: Store, settings: Settings) -> None:
    """Two recalled lures led to the same new domain: a re-scan of one of them is marked by the
    other; with only one condemned, that one's own re-scan is not marked by itself."""
    now = time.time()
    _history(store, now)
    first = _record(store, "payroll@hr-notice.example", [LURE.format(n=1)], now - 3 * HOUR, n=1)
    second = _record(store, "it@other-sender.example", [LURE.format(n=2)], now - 2 * HOUR, n=2)
    _recall(store, second)
    assert await _scan(store, settings, "it@other-sender.example", [LURE.format(n=2)], now, mail_id=second) is None
    _recall(store, first)
    hit = await _scan(store, settings, "it@other-sender.example", [LURE.format(n=2)], now, mail_id=second)
    assert hit is not None and hit.data["condemned"] == first
    hit = await _scan(store, settings, "payroll@hr-notice.example", [LURE.format(n=1)], now, mail_id=first)
    assert hit is not None and hit.data["condemned"] == second


def test_the_first_link_dates_kept_are_bounded(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """When each destination was first linked is kept for good, but no more of them than the bound."""
    now = time.time()
    for i in range(12):
        _record(store, "a@one.example", [f"https://new-{i}.example/x"], now - HOUR, n=i)
    monkeypatch.setattr(history, "SEEN_CACHE", 5)
    h = history.History(store)
    for i in range(12):
        assert h.first_linked(("url_domain", f"new-{i}.example")) is not None
        assert len(h._kept) <= 5


async def test_whose_verdict_condemns(store: Store, settings: Settings) -> None:
    now = time.time()
    _history(store, now)
    # The gateway's own later verdicts do not feed the sign; a threat indicator's recall and a
    # message marked a threat do.
    wave = _record(store, "a@one.example", ["https://by-wave.example/x"], now - HOUR, n=1)
    _recall(store, wave, trigger="auto:wave")
    assert await _scan(store, settings, "b@two.example", ["https://by-wave.example/y"], now) is None
    intel = _record(store, "a@one.example", ["https://by-intel.example/x"], now - HOUR, n=2)
    _recall(store, intel, trigger="auto:indicator")
    assert await _scan(store, settings, "b@two.example", ["https://by-intel.example/y"], now) is not None
    marked = _record(store, "a@one.example", ["https://marked.example/x"], now - HOUR, n=3)
    outcome = await condemn_message(RecallEngine(settings, store), marked, "analyst", "reported by users")
    assert outcome.state == "none"  # it had no delivered copy to recall: the mark alone condemns
    hit = await _scan(store, settings, "b@two.example", ["https://marked.example/y"], now)
    assert hit is not None and "marked a threat" in hit.evidence


def test_a_mark_taken_back_condemns_nothing(store: Store, settings: Settings) -> None:
    """A message marked a threat with no copy left to recall: `mailmoat recall uncondemn` takes the mark back."""
    from typer.testing import CliRunner

    from mailmoat.cli import app

    now = time.time()
    _history(store, now)
    marked = _record(store, "a@one.example", ["https://marked.example/x"], now - HOUR, n=3)
    asyncio.run(condemn_message(RecallEngine(settings, store), marked, "analyst", "reported by users"))
    assert asyncio.run(_scan(store, settings, "b@two.example", ["https://marked.example/y"], now)) is not None
    cli = ["--data-dir", settings.data_dir, "--db", settings.db_url, "--format", "json"]
    res = CliRunner().invoke(app, ["recall", "uncondemn", marked, "--reason", "a partner's new site", *cli])
    assert res.exit_code == 0 and '"recall_jobs": []' in res.output, res.output
    assert asyncio.run(_scan(store, settings, "b@two.example", ["https://marked.example/y"], now)) is None
    again = CliRunner().invoke(app, ["recall", "uncondemn", marked, *cli])
    assert again.exit_code != 0 and "not marked as a threat" in again.output


async def test_a_mark_taken_back_ends_its_recalls_word_but_not_a_persons_recall(store: Store, settings: Settings) -> None:
    """Marked a threat, with copies recalled by the mark's job: `uncondemn` ends what the mark
    taught, though the copies stay recalled. A recall someone ran by hand still counts."""
    from mailmoat.recall.auto import uncondemn_message

    now = time.time()
    _history(store, now)
    marked = _record(store, "a@one.example", ["https://marked.example/x"], now - HOUR, n=3)
    await condemn_message(RecallEngine(settings, store), marked, "analyst", "reported")
    job = _recall(store, marked, trigger="auto:verdict")  # its copies, recalled by the mark
    assert await _scan(store, settings, "b@two.example", ["https://marked.example/y"], now) is not None
    assert uncondemn_message(settings, store, marked, "analyst", "a partner's new site") == [job]
    assert await _scan(store, settings, "b@two.example", ["https://marked.example/y"], now) is None
    both = _record(store, "a@one.example", ["https://by-hand.example/x"], now - HOUR, n=4)
    await condemn_message(RecallEngine(settings, store), both, "analyst", "reported")
    _recall(store, both, trigger="manual")
    _recall(store, both, trigger="auto:verdict")
    uncondemn_message(settings, store, both, "analyst")
    hit = await _scan(store, settings, "b@two.example", ["https://by-hand.example/y"], now)
    assert hit is not None and "(manual)" in hit.evidence


async def test_a_recall_of_many_messages_is_read_in_parts(
    store: Store, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mailmoat.urlcheck import history

    monkeypatch.setattr(history, "_CHUNK", 2)  # five messages: three queries
    now = time.time()
    _history(store, now)
    for n in range(5):
        _recall(store, _record(store, f"a{n}@one.example", [f"https://lure-{n}.example/"], now - HOUR, n=n), when=now + n)
    for n in range(5):
        assert await _scan(store, settings, "b@two.example", [f"https://lure-{n}.example/x"], now) is not None


async def test_a_restored_recall_or_a_released_message_undoes_it(store: Store, settings: Settings) -> None:
    now = time.time()
    _history(store, now)
    first = _record(store, "a@one.example", [LURE.format(n=1)], now - 3 * HOUR, n=1)
    _recall(store, first, state="restored")
    assert await _scan(store, settings, "b@two.example", [LURE.format(n=2)], now) is None
    second = _record(store, "a@one.example", ["https://new-partner.example/welcome"], now - 3 * HOUR, n=2)
    await condemn_message(RecallEngine(settings, store), second, "analyst", "reported")  # marked, then its copies recalled
    _recall(store, second, trigger="auto:verdict")
    assert await _scan(store, settings, "b@two.example", ["https://new-partner.example/"], now) is not None
    _release(store, _record(store, "c@three.example", ["https://new-partner.example/terms"], now - HOUR, n=3))
    assert await _scan(store, settings, "b@two.example", ["https://new-partner.example/"], now) is None


async def test_only_destinations_new_when_the_condemned_mail_came(store: Store, settings: Settings) -> None:
    now = time.time()
    _history(store, now)
    # A domain the site knew ten days before the lure: a hijacked partner's site, not the attacker's own.
    _record(store, "info@old-friend.example", ["https://old-friend-shop.example/"], now - 10 * DAY, n=1)
    lure = _record(store, "a@one.example", ["https://old-friend-shop.example/hacked/login.php"], now - HOUR, n=2)
    _recall(store, lure)
    assert await _scan(store, settings, "b@two.example", ["https://old-friend-shop.example/"], now) is None
    settings.condemned_links.young_days = 14
    assert await _scan(store, settings, "b@two.example", ["https://old-friend-shop.example/"], now) is not None


async def test_a_store_too_young_to_tell_says_nothing(store: Store, settings: Settings) -> None:
    now = time.time()
    _history(store, now, days=3)
    lure = _record(store, "a@one.example", [LURE.format(n=1)], now - HOUR, n=1)
    _recall(store, lure)
    assert await _scan(store, settings, "b@two.example", [LURE.format(n=2)], now) is None
    settings.condemned_links.young_days = 2
    assert await _scan(store, settings, "b@two.example", [LURE.format(n=2)], now) is not None


async def test_a_form_on_a_shared_host_and_a_hosting_page(store: Store, settings: Settings) -> None:
    now = time.time()
    _history(store, now)
    lure = _record(store, "a@one.example", ["https://forms.gle/Lure7Q", "https://gov-subsidy.web.app/claim"], now - HOUR)
    _recall(store, lure)
    hit = await _scan(store, settings, "b@two.example", ["https://forms.gle/Lure7Q?usp=mail"], now)
    assert hit is not None and hit.data["kind"] == "url_page" and "the page forms.gle/Lure7Q" in hit.evidence
    assert await _scan(store, settings, "b@two.example", ["https://forms.gle/Survey1"], now) is None
    hit = await _scan(store, settings, "b@two.example", ["https://gov-subsidy.web.app/"], now)
    assert hit is not None and hit.data == {**hit.data, "kind": "url_host", "domain": "gov-subsidy.web.app"}
    assert await _scan(store, settings, "b@two.example", ["https://someone-else.web.app/"], now) is None


def test_what_counts_as_a_destination(settings: Settings) -> None:
    from mailmoat.urlcheck.destinations import link_destinations, recorded_destination
    from mailmoat.urlcheck.lookalike import DomainCatalog

    catalog = DomainCatalog([ORG], [])
    msg = parse(_raw("a@one.example", [
        "https://login.payroll-verify-2026.top/x", "https://evil.web.app/", "https://forms.gle/Ab1",
        "https://www.microsoft.com/", f"https://oa.{ORG}/", "http://10.1.2.3/intranet", "https://www.one-corp.com/",
        "http://http//search.example.com/book",  # a typo: the host is "http", which leads nowhere
        "http://203.0.113.9/claim",
    ]))
    assert link_destinations(msg, "one-corp.com", catalog) == [
        ("url_domain", "payroll-verify-2026.top"), ("url_host", "evil.web.app"), ("url_page", "forms.gle/Ab1"),
        ("url_domain", "203.0.113.9"),
    ]
    # The indicator rows of a recorded message, read by the same rules.
    assert recorded_destination("url_host", "login.payroll-verify-2026.top", "", catalog) is None  # its domain row names it
    assert recorded_destination("url_domain", "web.app", "", catalog) is None  # the platform is everyone's
    assert recorded_destination("url_domain", "http", "", catalog) is None
    assert recorded_destination("url_domain", "one-corp.com", "one-corp.com", catalog) is None
    assert recorded_destination("url_page", "forms.gle/Ab1", "", catalog) == ("url_page", "forms.gle/Ab1")
    # A tenant's page on a brand's platform is the tenant's, though the platform's domain is Amazon's.
    bucket = parse(_raw("a@one.example", ["https://daotlxkffbrt.s3.us-east-1.amazonaws.com/KDsdvS.html", "https://aws.amazon.com/"]))
    assert link_destinations(bucket, "one-corp.com", catalog) == [("url_host", "daotlxkffbrt.s3.us-east-1.amazonaws.com")]
    assert recorded_destination("url_host", "daotlxkffbrt.s3.us-east-1.amazonaws.com", "", catalog) == (
        "url_host", "daotlxkffbrt.s3.us-east-1.amazonaws.com")
    # A click tracker's target is a destination beside the tracker itself.
    tracked = parse(_raw("a@one.example", ["https://click.mailer-tracker.com/t?u=aHR0cHM6Ly9wYXlyb2xsLXZlcmlmeS0yMDI2LnRvcC94"]))
    assert link_destinations(tracked, "one-corp.com", catalog) == [
        ("url_domain", "mailer-tracker.com"), ("url_domain", "payroll-verify-2026.top"),
    ]


async def test_a_lure_behind_a_click_tracker_condemns_where_it_led(store: Store, settings: Settings) -> None:
    """The recalled lure wrapped its link in a mail service's tracker: the next copy, linking the
    new domain plainly or through another tracker, is marked; the tracker's own domain, which this
    site knew for weeks, is not condemned with it."""
    now = time.time()
    _history(store, now)
    wrapped = "https://click.mailservice.example/t/abc?u=aHR0cHM6Ly9wYXlyb2xsLXZlcmlmeS0yMDI2LnRvcC9sb2dpbg"
    lure = _record(store, "payroll@hr-notice.example", [wrapped], now - 2 * HOUR)
    _recall(store, lure)
    hit = await _scan(store, settings, "it@other-sender.example", [LURE.format(n=2)], now)
    assert hit is not None and hit.data["domain"] == "payroll-verify-2026.top"
    other_tracker = "https://links.other-esp.example/c?url=https%3A%2F%2Fpayroll-verify-2026.top%2Fx"
    assert await _scan(store, settings, "it@other-sender.example", [other_tracker], now) is not None
    assert await _scan(store, settings, "it@other-sender.example", ["https://click.mailservice.example/t/zzz"], now) is None


async def test_off_without_a_store_or_when_switched_off(store: Store, settings: Settings) -> None:
    assert not CondemnedLinkAnalyzer(AnalyzerEnv(settings=settings, store=None)).enabled()
    settings.condemned_links.enabled = False
    assert not CondemnedLinkAnalyzer(AnalyzerEnv(settings=settings, store=store)).enabled()


@pytest.mark.postgres
async def test_on_postgresql_a_recall_made_on_another_node_counts(settings: Settings, pg_url: str) -> None:  # noqa: F811
    """Several nodes share one PostgreSQL store: a recall that another node ran condemns the destination here."""
    store = Store(pg_url)
    try:
        now = time.time()
        _history(store, now)
        lure = _record(store, "a@one.example", [LURE.format(n=1), "https://forms.gle/PgLure"], now - HOUR, n=1)
        assert await _scan(store, settings, "b@two.example", [LURE.format(n=2)], now) is None
        _recall(store, lure)
        hit = await _scan(store, settings, "b@two.example", [LURE.format(n=2)], now)
        assert hit is not None and "recalled by job" in hit.evidence
        assert await _scan(store, settings, "b@two.example", ["https://forms.gle/PgLure"], now) is not None
        _release(store, _record(store, "c@three.example", ["https://forms.gle/PgLure"], now - HOUR, n=2))
        assert await _scan(store, settings, "b@two.example", ["https://forms.gle/PgLure"], now) is None
        assert await _scan(store, settings, "b@two.example", [LURE.format(n=2)], now) is not None
    finally:
        store.close()


def test_through_the_gateway_the_next_copy_after_a_recall_is_marked(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Real SMTP on loopback, local Maildir: a lure is delivered; an administrator recalls it with
    `mailmoat recall run`; the next lure, in other words from another sender, links the same new
    domain and is recorded with the sign."""
    import smtplib

    from sqlalchemy import select
    from typer.testing import CliRunner

    from mailmoat.cli import app
    from tests.support.gateway import inprocess_gateway, wait_for

    # The store is read again every REFRESH seconds; here at once, in the listener's process.
    monkeypatch.setattr(condemned_links, "REFRESH", 0.0)
    settings.server.workers = 0
    settings.server.listen = "127.0.0.1:0"
    store = Store(settings.db_url, raw_dir=settings.raw_dir)
    _history(store, time.time())

    def recorded(frm: str) -> MessageRow | None:
        with store.session() as s:
            return s.scalars(select(MessageRow).where(MessageRow.from_addr == frm)).first()

    def plain(frm: str, link: str, subject: str, n: int) -> bytes:
        # Words that no engine holds: what gets past them is what an administrator recalls.
        return (
            f"From: Li Wei <{frm}>\r\nTo: wang@{ORG}\r\nSubject: {subject}\r\nMessage-ID: <p{n}@{frm.split('@')[1]}>\r\n"
            "Date: Sun, 29 Nov 2026 10:00:00 +0800\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
            f'<p>Hello, the documents we discussed are here: <a href="{link}">documents</a></p>\r\n'
        ).encode()

    def delivered(mail_id: str) -> bool:
        with store.session() as s:
            return s.scalars(select(DeliveryRow).where(DeliveryRow.message_id == mail_id, DeliveryRow.status == "delivered")).first() is not None

    try:
        with inprocess_gateway(settings) as gw:
            with smtplib.SMTP("127.0.0.1", gw.port, timeout=30) as smtp:
                smtp.sendmail("li.wei@trade-notice.example", [f"wang@{ORG}"],
                              plain("li.wei@trade-notice.example", LURE.format(n=1), "Documents", 1))
            first = wait_for(lambda: recorded("li.wei@trade-notice.example"), timeout=60, what="the first lure to be recorded")
            wait_for(lambda: delivered(first.id), timeout=60, what="the first lure to be delivered")
            res = CliRunner().invoke(app, ["recall", "run", "--message-id", first.message_id, "--yes",
                                           "--data-dir", settings.data_dir, "--db", settings.db_url])
            assert res.exit_code == 0, res.output
            with smtplib.SMTP("127.0.0.1", gw.port, timeout=30) as smtp:
                smtp.sendmail("zhang.min@other-trade.example", [f"wang@{ORG}"],
                              plain("zhang.min@other-trade.example", LURE.format(n=2), "Quotation", 2))
            second = wait_for(lambda: recorded("zhang.min@other-trade.example"), timeout=60, what="the second lure")
    finally:
        store.close()
    assert first.action == "deliver" and "LINK_CONDEMNED_DESTINATION" not in first.symbols
    assert second.symbols.get("LINK_CONDEMNED_DESTINATION") == 7.0 and second.action == "tag", (second.action, second.symbols)


def test_a_mark_undone_by_restoring_its_recall_condemns_nothing(settings: Settings) -> None:
    """An analyst marks a delivered lure a threat (`mailmoat recall condemn`), then restores the
    recall as a mistake (`mailmoat recall restore`): the message is no longer marked, and what it
    linked no longer condemns other mail, though the audit log keeps the mark."""
    import smtplib

    from sqlalchemy import select
    from typer.testing import CliRunner

    from mailmoat.cli import app
    from mailmoat.store.audit_models import AuditRow
    from tests.support.gateway import inprocess_gateway, wait_for

    settings.server.workers = 0
    settings.server.listen = "127.0.0.1:0"
    settings.recall.follow_up_hours = 0
    store = Store(settings.db_url, raw_dir=settings.raw_dir)
    now = time.time()
    _history(store, now)
    cli = ["--data-dir", settings.data_dir, "--db", settings.db_url]
    try:
        with inprocess_gateway(settings) as gw:
            with smtplib.SMTP("127.0.0.1", gw.port, timeout=30) as smtp:
                smtp.sendmail("li.wei@trade-notice.example", [f"wang@{ORG}"], (
                    f"From: Li Wei <li.wei@trade-notice.example>\r\nTo: wang@{ORG}\r\nSubject: Documents\r\n"
                    "Message-ID: <p1@trade-notice.example>\r\nDate: Sun, 29 Nov 2026 10:00:00 +0800\r\nMIME-Version: 1.0\r\n"
                    "Content-Type: text/html; charset=utf-8\r\n\r\n"
                    f'<p>Hello, the documents we discussed are here: <a href="{LURE.format(n=1)}">documents</a></p>\r\n'
                ).encode())

            def delivered() -> str | None:
                with store.session() as s:
                    return s.scalars(select(DeliveryRow.message_id).join(MessageRow, MessageRow.id == DeliveryRow.message_id).where(
                        MessageRow.from_addr == "li.wei@trade-notice.example", DeliveryRow.status == "delivered")).first()

            lure = wait_for(delivered, timeout=60, what="the lure to be delivered")
        res = CliRunner().invoke(app, ["recall", "condemn", lure, "--reason", "phishing", *cli])
        assert res.exit_code == 0, res.output
        assert asyncio.run(_scan(store, settings, "b@two.example", [LURE.format(n=2)], time.time())) is not None
        with store.session() as s:
            job = s.scalars(select(RecallJobRow.id).where(RecallJobRow.trigger == "auto:verdict")).one()
        res = CliRunner().invoke(app, ["recall", "restore", job, *cli])
        assert res.exit_code == 0, res.output
        assert asyncio.run(_scan(store, settings, "b@two.example", [LURE.format(n=2)], time.time())) is None
        with store.session() as s:
            assert s.get_one(MessageRow, lure).status == "processed"
            assert [a.action for a in s.scalars(select(AuditRow).where(AuditRow.target == lure))] == [
                "message.condemn", "message.uncondemn"]
    finally:
        store.close()
