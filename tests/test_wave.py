"""Waves: a link domain new to this site that mail from many unrelated senders links within hours."""

from __future__ import annotations

import time

import pytest

from mailmoat.analyzers.base import AnalysisContext, AnalyzerEnv
from mailmoat.analyzers.wave import WaveAnalyzer
from mailmoat.config import Settings
from mailmoat.model import Action, Direction, Envelope, Finding, Verdict
from mailmoat.parse import parse
from mailmoat.store.db import Store
from tests.support.pg import pg_url  # noqa: F401  (fixture)

ORG = "acme-corp.cn"
HOUR = 3600.0
DAY = 24 * HOUR
LURE = "https://gov-subsidy-claim.top/apply?id={n}"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared settings, with this organisation's own domain."""
    settings.server.domains = [ORG]
    return settings


def _raw(frm: str, link: str, subject: str = "工资补贴申领通知", n: int = 0, extra: str = "") -> bytes:
    return (
        f"From: 财务处 <{frm}>\r\nTo: wang@{ORG}\r\nSubject: {subject}\r\nMessage-ID: <w{n}.{frm}>\r\n{extra}"
        "MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        f'<p>请于本周内完成申领: <a href="{link}">点击办理</a></p>\r\n'
    ).encode()


def _record(
    store: Store, frm: str, link: str, when: float, n: int = 0, direction: Direction = Direction.INBOUND, extra: str = ""
) -> None:
    env = Envelope(frm, [f"wang@{ORG}"], received_at=when, direction=direction)
    store.record_message(env, parse(_raw(frm, link, n=n, extra=extra)), Verdict(Action.DELIVER, 0.0))


def _history(store: Store, now: float, days: int = 10, count: int = 200) -> None:
    """A site's everyday mail over the last `days`: partners and newsletters linking their usual sites."""
    for i in range(count):
        partner = f"partner{i % 7}.example"
        link = "https://news.example.org/today" if i % 3 else f"https://www.{partner}/orders"
        _record(store, f"sales@{partner}", link, now - days * DAY + i * (days * DAY / 2) / count, n=i)


def _three_copies(store: Store, now: float, action: Action) -> list[str]:
    """Three strangers' copies of the lure an hour ago, recorded with `action`; their envelope ids."""
    ids = []
    for i, frm in enumerate(["a@one.example", "b@two.example", "c@three.example"]):
        env = Envelope(frm, [f"wang@{ORG}"], received_at=now - HOUR)
        store.record_message(env, parse(_raw(frm, LURE.format(n=i), n=i)), Verdict(action, 8.0))
        ids.append(env.id)
    return ids


async def _scan(
    store: Store, settings: Settings, frm: str, link: str, now: float, direction: Direction = Direction.INBOUND,
    extra: str = "",
) -> Finding | None:
    an = WaveAnalyzer(AnalyzerEnv(settings=settings, store=store))
    env = Envelope(frm, [f"wang@{ORG}"], received_at=now, direction=direction)
    ctx = AnalysisContext(message=parse(_raw(frm, link, extra=extra)), envelope=env, settings=settings)
    got = {f.symbol: f for f in await an.analyze(ctx)}
    return got.get("LINK_DOMAIN_WAVE")


async def test_a_new_domain_linked_by_many_unrelated_senders_is_a_wave(store: Store, settings: Settings) -> None:
    now = time.time()
    _history(store, now)
    senders = ["hr@school-a.edu.cn", "info@trade-b.com", "admin@clinic-c.org"]
    for i, frm in enumerate(senders):
        _record(store, frm, LURE.format(n=i), now - (5 - i) * HOUR, n=i)
    hit = await _scan(store, settings, "office@factory-d.cn", LURE.format(n=9), now)
    assert hit is not None and hit.score == 3.0
    assert "gov-subsidy-claim.top" in hit.evidence and "4 unrelated senders" in hit.evidence
    assert "school-a.edu.cn" in hit.evidence and "3 other message(s)" in hit.evidence and "5.0 h before" in hit.evidence
    assert hit.data["domain"] == "gov-subsidy-claim.top" and hit.data["messages"] == 3
    # Three senders are not yet a wave at the default of four.
    assert await _scan(store, settings, senders[2], LURE.format(n=9), now - 2 * HOUR) is None
    # A site may ask for more senders.
    settings.waves.min_senders = 5
    assert await _scan(store, settings, "office@factory-d.cn", LURE.format(n=9), now) is None


async def test_a_qr_code_link_counts_like_any_other(store: Store, settings: Settings) -> None:
    now = time.time()
    _history(store, now)
    for i, frm in enumerate(["a@one.example", "b@two.example", "c@three.example"]):
        _record(store, frm, LURE.format(n=i), now - HOUR, n=i)
    an = WaveAnalyzer(AnalyzerEnv(settings=settings, store=store))
    msg = parse(_raw("d@four.example", "https://www.four.example/"))
    from tests.support.detmsg import url

    msg.urls.append(url(LURE.format(n=7), source="qr"))
    env = Envelope("d@four.example", [f"wang@{ORG}"], received_at=now)
    got = await an.analyze(AnalysisContext(message=msg, envelope=env, settings=settings))
    assert [f.symbol for f in got] == ["LINK_DOMAIN_WAVE"]


async def test_what_is_no_wave(store: Store, settings: Settings) -> None:
    now = time.time()
    _history(store, now)
    # A domain this site knew before the window, linked by many senders today: a platform, not a wave.
    _record(store, "someone@old-friend.example", "https://shared-tool.example/x", now - 5 * DAY, n=90)
    for i, frm in enumerate(["a@one.example", "b@two.example", "c@three.example"]):
        _record(store, frm, "https://shared-tool.example/x", now - HOUR, n=100 + i)
    assert await _scan(store, settings, "d@four.example", "https://shared-tool.example/y", now) is None
    # A newsletter linking its own site from several hosts of one domain: one sender, and its own domain.
    for i, host in enumerate(["mail", "news", "promo"]):
        _record(store, f"hello@{host}.shop-new.example", "https://shop-new.example/sale", now - HOUR, n=200 + i)
    assert await _scan(store, settings, "hello@deals.shop-new.example", "https://shop-new.example/sale", now) is None
    # The same sender domain many times is one sender; so is one free-mail account many times.
    for i in range(3):
        _record(store, "same.person@gmail.com", "https://one-account.example/a", now - HOUR, n=350 + i)
    assert await _scan(store, settings, "same.person@gmail.com", "https://one-account.example/a", now) is None
    for i in range(5):
        _record(store, f"user{i}@spray.example", "https://fresh-lure.example/a", now - HOUR, n=300 + i)
    assert await _scan(store, settings, "user9@spray.example", "https://fresh-lure.example/a", now) is None
    # The organisation's own domains and well-known brands' domains are never asked about.
    for i, frm in enumerate(["a@one.example", "b@two.example", "c@three.example"]):
        _record(store, frm, f"https://oa.{ORG}/notice", now - HOUR, n=400 + i)
    assert await _scan(store, settings, "d@four.example", f"https://oa.{ORG}/notice", now) is None
    # A mailing list's posts from members at many domains all link the list's host in the footer:
    # they neither count towards a wave nor are marked.
    lst = "List-Id: Users of the tool <users.lists.new-tool.example>\r\n"
    for i, frm in enumerate(["a@one.example", "b@two.example", "c@three.example"]):
        _record(store, frm, "https://lists.new-tool.example/users", now - HOUR, n=450 + i, extra=lst)
    assert await _scan(store, settings, "d@four.example", "https://lists.new-tool.example/users", now, extra=lst) is None
    assert await _scan(store, settings, "d@four.example", "https://lists.new-tool.example/users", now) is None
    # Mail between colleagues is the account analyzer's to judge.
    for i, frm in enumerate(["a@one.example", "b@two.example", "c@three.example"]):
        _record(store, frm, LURE.format(n=i), now - HOUR, n=500 + i)
    assert await _scan(store, settings, f"li@{ORG}", LURE.format(n=9), now, direction=Direction.INTERNAL) is None
    assert await _scan(store, settings, "d@four.example", LURE.format(n=9), now) is not None


async def test_a_store_younger_than_the_window_says_nothing(store: Store, settings: Settings) -> None:
    # A fresh install has seen every domain "for the first time": no history, no wave.
    now = time.time()
    _history(store, now, days=1)
    for i, frm in enumerate(["a@one.example", "b@two.example", "c@three.example"]):
        _record(store, frm, LURE.format(n=i), now - HOUR, n=i)
    assert await _scan(store, settings, "d@four.example", LURE.format(n=9), now) is None
    # The same mail on a site with a window of history behind it.
    settings.waves.window_hours = 12
    assert await _scan(store, settings, "d@four.example", LURE.format(n=9), now) is not None


async def test_without_a_store_or_switched_off_it_is_off(store: Store, settings: Settings) -> None:
    assert not WaveAnalyzer(AnalyzerEnv(settings=settings, store=None)).enabled()
    settings.waves.enabled = False
    assert not WaveAnalyzer(AnalyzerEnv(settings=settings, store=store)).enabled()


def test_through_the_gateway_the_fourth_sender_of_a_wave_is_marked(settings: Settings) -> None:
    """Real SMTP on loopback: four strangers' mail with one new link domain arrives through the MX;
    the first three are recorded without the sign, the fourth with it."""
    import smtplib

    from sqlalchemy import select

    from mailmoat.store.models import MessageRow
    from tests.support.gateway import inprocess_gateway, wait_for

    settings.server.listen = "127.0.0.1:0"
    store = Store(settings.db_url, raw_dir=settings.raw_dir)
    _history(store, time.time())

    def symbols(frm: str) -> dict[str, float] | None:
        with store.session() as s:
            row = s.scalars(select(MessageRow).where(MessageRow.from_addr == frm)).first()
            return dict(row.symbols) if row is not None else None

    senders = ["hr@school-a.edu.cn", "info@trade-b.com", "admin@clinic-c.org", "office@factory-d.cn"]
    got: dict[str, dict[str, float]] = {}
    try:
        with inprocess_gateway(settings) as gw:
            for i, frm in enumerate(senders):
                with smtplib.SMTP("127.0.0.1", gw.port, timeout=30) as smtp:
                    smtp.sendmail(frm, [f"wang@{ORG}"], _raw(frm, LURE.format(n=i), n=i))
                # Each copy is judged against the ones recorded before it.
                got[frm] = wait_for(lambda f=frm: symbols(f), timeout=60, what=f"{frm}'s mail to be recorded")
    finally:
        store.close()
    assert ["LINK_DOMAIN_WAVE" in got[f] for f in senders] == [False, False, False, True]
    assert got[senders[3]]["LINK_DOMAIN_WAVE"] == 3.0


@pytest.mark.postgres
async def test_on_postgresql_a_wave_recorded_by_other_nodes_counts(settings: Settings, pg_url: str) -> None:  # noqa: F811
    """Several nodes share one PostgreSQL store: copies another node recorded count, list posts do not."""
    store = Store(pg_url)
    try:
        now = time.time()
        _history(store, now)
        lst = "List-Id: Users <users.lists.pg-tool.example>\r\n"
        for i, frm in enumerate(["a@one.example", "b@two.example", "c@three.example"]):
            _record(store, frm, LURE.format(n=i), now - HOUR, n=i)
            _record(store, frm, "https://lists.pg-tool.example/u", now - HOUR, n=10 + i, extra=lst)
        hit = await _scan(store, settings, "d@four.example", LURE.format(n=9), now)
        assert hit is not None and "4 unrelated senders" in hit.evidence
        assert await _scan(store, settings, "d@four.example", "https://lists.pg-tool.example/u", now) is None
    finally:
        store.close()


def test_through_the_gateway_the_copies_delivered_before_the_wave_was_recognised_are_recalled(settings: Settings) -> None:
    """Real SMTP on loopback, local Maildir: three strangers' subsidy lures linking one new address are
    tagged and delivered; the fourth sender's copy is held with LINK_DOMAIN_WAVE, and the three
    earlier copies are judged again, condemned and recalled from the mailbox (trigger auto:wave)."""
    import smtplib

    from sqlalchemy import select

    from mailmoat.store.models import IndicatorRow, MessageRow
    from mailmoat.store.recall_models import RecallCopyRow, RecallJobRow
    from tests.support.gateway import inprocess_gateway, wait_for

    settings.server.listen = "127.0.0.1:0"
    store = Store(settings.db_url, raw_dir=settings.raw_dir)
    _history(store, time.time())
    # A domain this site has never seen, under a much-abused top-level domain: each copy is a lure
    # linking a throw-away host (tagged, 8); the wave is what holds the fourth. (A bare IP address
    # would hold even the first: URL_IP and the throw-away host together reach 10.)
    link = "https://subsidy-apply.top/claim?u={n}"

    def lure(frm: str, n: int) -> bytes:
        return (
            f"From: Wang Li <{frm}>\r\nTo: wang@{ORG}\r\nSubject: 工资补贴申领通知\r\nMessage-ID: <wave{n}@{frm.split('@')[1]}>\r\n"
            "Date: Sun, 29 Nov 2026 10:00:00 +0800\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
            f'<p>请于本周内完成申领: <a href="{link.format(n=n)}">点击办理</a></p>\r\n'
        ).encode()

    def recorded(frm: str) -> tuple[str, dict[str, float]] | None:
        with store.session() as s:
            row = s.scalars(select(MessageRow).where(MessageRow.from_addr == frm)).first()
            return (row.action, dict(row.symbols)) if row is not None else None

    def recalled() -> list[tuple[str, str, list[str]]] | None:
        with store.session() as s:
            jobs = s.scalars(select(RecallJobRow).where(RecallJobRow.trigger == "auto:wave")).all()
            out = [
                (j.state, j.reason, [c.state for c in s.scalars(select(RecallCopyRow).where(RecallCopyRow.job_id == j.id))])
                for j in jobs
            ]
        return out if len(out) == 3 and all(state == "done" for state, _, _ in out) else None

    senders = ["hr@school-a.edu.cn", "info@trade-b.com", "admin@clinic-c.org", "office@factory-d.cn"]
    first: dict[str, tuple[str, dict[str, float]]] = {}
    try:
        with inprocess_gateway(settings) as gw:
            for i, frm in enumerate(senders):
                with smtplib.SMTP("127.0.0.1", gw.port, timeout=30) as smtp:
                    smtp.sendmail(frm, [f"wang@{ORG}"], lure(frm, i))
                first[frm] = wait_for(lambda f=frm: recorded(f), timeout=60, what=f"{frm}'s mail to be recorded")
            jobs = wait_for(recalled, timeout=60, what="the earlier copies to be recalled")
            after = {frm: recorded(frm) for frm in senders[:3]}
            with store.session() as s:  # what a search by symbol finds follows the new verdict
                marked = set(s.scalars(select(MessageRow.from_addr).join(IndicatorRow, IndicatorRow.message_id == MessageRow.id)
                                       .where(IndicatorRow.kind == "symbol", IndicatorRow.value == "LINK_DOMAIN_WAVE")))
            mailbox = next(p for p in settings.mail_dir.iterdir() if p.is_dir() and p.name.startswith("wang"))
            visible = [p for d in ("new", "cur") for p in (mailbox / d).iterdir()]
            hidden = [p for d in ("new", "cur") for p in (mailbox / ".MailmoatRecall" / d).iterdir()]
    finally:
        store.close()
    assert [first[f][0] for f in senders] == ["tag", "tag", "tag", "quarantine"]
    assert "LINK_DOMAIN_WAVE" in first[senders[3]][1] and "LINK_DOMAIN_WAVE" not in first[senders[0]][1]
    # Judged again with the whole wave in view, each earlier copy is condemned and its copy recalled.
    assert all(a is not None and a[0] == "quarantine" and "LINK_DOMAIN_WAVE" in a[1] for a in after.values())
    assert sorted(states for _, _, states in jobs) == [["recalled"], ["recalled"], ["recalled"]]
    assert all("re-scan changed the verdict from tag to quarantine" in reason for _, reason, _ in jobs)
    assert marked == set(senders)
    # Silently: the reader's mailbox holds none of the wave, the hidden folder all three copies.
    assert visible == [] and len(hidden) == 3


def test_a_wave_is_followed_up_once_per_domain_and_window(store: Store, settings: Settings) -> None:
    from mailmoat.recall.waves import WaveFollowUp

    follow = WaveFollowUp(settings, store, scanner=None)  # type: ignore[arg-type]  # due() scans nothing
    wave = Finding("LINK_DOMAIN_WAVE", 3.0, "gov-subsidy-claim.top ...", "wave", "campaign", {"domain": "gov-subsidy-claim.top"})
    now = time.time()
    held = Verdict(Action.QUARANTINE, 12.0, [wave])
    env = Envelope("d@four.example", [f"wang@{ORG}"], received_at=now)
    assert follow.due(env, held) == ("url_domain", "gov-subsidy-claim.top")
    # Delivered or tagged copies call for nothing: the wave did not condemn them.
    assert follow.due(env, Verdict(Action.TAG, 8.0, [wave])) is None
    assert follow.due(env, Verdict(Action.QUARANTINE, 12.0, [])) is None
    assert follow.due(Envelope("x@y.example", [], received_at=now, direction=Direction.INTERNAL), held) is None
    follow._done[("url_domain", "gov-subsidy-claim.top")] = now  # what after() notes once it has judged the earlier copies
    assert follow.due(env, held) is None
    later = Envelope("e@five.example", [f"wang@{ORG}"], received_at=now + settings.waves.window_hours * HOUR + 1)
    assert follow.due(later, held) == ("url_domain", "gov-subsidy-claim.top")


async def test_a_recognised_wave_is_remembered_until_its_domain_is_old(store: Store, settings: Settings) -> None:
    now = time.time()
    _history(store, now)
    for i, frm in enumerate(["a@one.example", "b@two.example", "c@three.example"]):
        _record(store, frm, LURE.format(n=i), now - 3 * HOUR, n=i)
    an = WaveAnalyzer(AnalyzerEnv(settings=settings, store=store))

    async def judge(frm: str, when: float) -> list[Finding]:
        env = Envelope(frm, [f"wang@{ORG}"], received_at=when)
        return await an.analyze(AnalysisContext(message=parse(_raw(frm, LURE.format(n=9))), envelope=env, settings=settings))

    (first,) = await judge("d@four.example", now)
    assert first.data["messages"] == 3 and "or more" not in first.evidence
    # The next copies of a big wave are judged from what this process recognised, not from
    # thousands of earlier rows; the evidence then says "or more" and names the new sender.
    (later,) = await judge("e@five.example", now + HOUR)
    assert "3 or more other message(s)" in later.evidence and "five.example" in later.data["senders"]
    # Once the domain's first copy is older than the window, it is no wave any more.
    assert await judge("f@six.example", now + 3 * DAY) == []


async def test_a_page_on_a_hosting_platform_is_a_destination_of_its_own(store: Store, settings: Settings) -> None:
    # The platform's domain is everyone's and old here; the attacker's page on it is new.
    now = time.time()
    _history(store, now)
    _record(store, "dev@partner0.example", "https://partner-docs.web.app/guide", now - 6 * DAY, n=80)
    page = "https://gov-subsidy-2026.web.app/claim?u={n}"
    for i, frm in enumerate(["a@one.example", "b@two.example", "c@three.example"]):
        _record(store, frm, page.format(n=i), now - HOUR, n=i)
    hit = await _scan(store, settings, "d@four.example", page.format(n=9), now)
    assert hit is not None and hit.data["domain"] == "gov-subsidy-2026.web.app" and hit.data["kind"] == "url_host"
    # Another page on the same platform is another destination: no wave.
    assert await _scan(store, settings, "d@four.example", "https://someone-else.web.app/", now) is None


def test_a_link_to_a_shared_host_is_named_by_its_page() -> None:
    from mailmoat.urlcheck.links import shared_page

    assert shared_page("docs.google.com", "https://docs.google.com/forms/d/e/1FAIpQLSfX/viewform?usp=sf_link") == (
        "docs.google.com/forms/d/e/1FAIpQLSfX"
    )
    assert shared_page("docs.google.com", "https://docs.google.com/forms/d/1AbC/edit") == "docs.google.com/forms/d/1AbC"
    assert shared_page("forms.gle", "https://forms.gle/Xy7Q2") == "forms.gle/Xy7Q2"
    assert shared_page("www.dropbox.com", "https://www.dropbox.com/scl/fi/k3j/Invoice.pdf?dl=0") == "dropbox.com/scl/fi/k3j"
    assert shared_page("forms.office.com", "https://forms.office.com/Pages/ResponsePage.aspx?ID=Ab9&r=1") == (
        "forms.office.com/pages/responsepage.aspx?id=Ab9"
    )
    assert shared_page("wjx.cn", "https://www.wjx.cn/vm/hR2Kq.aspx") == "wjx.cn/vm/hR2Kq.aspx"
    # Amazon S3, path-style, at the global or a regional endpoint: the bucket.
    assert shared_page("s3.amazonaws.com", "https://s3.amazonaws.com/MyBucket/a/login.html") == "s3.amazonaws.com/MyBucket"
    assert shared_page("s3.eu-west-1.amazonaws.com", "https://s3.eu-west-1.amazonaws.com/MyBucket/x.html") == (
        "s3.eu-west-1.amazonaws.com/MyBucket"
    )
    # The platform's own pages, a link without the page's part, and any other host: no page.
    for host, url in [("docs.google.com", "https://docs.google.com/"), ("forms.gle", "https://forms.gle/"),
                      ("forms.office.com", "https://forms.office.com/Pages/ResponsePage.aspx"),
                      ("gov-subsidy-claim.top", LURE.format(n=1))]:
        assert shared_page(host, url) == ""


async def test_a_form_on_a_shared_host_is_a_destination_of_its_own(store: Store, settings: Settings) -> None:
    # docs.google.com is a brand's host and years old here; the attacker's form on it is new.
    now = time.time()
    _history(store, now)
    old_form = "https://docs.google.com/forms/d/e/1FAIpQLSeOLD/viewform"
    _record(store, "events@partner0.example", old_form, now - 6 * DAY, n=80)
    form = "https://docs.google.com/forms/d/e/1FAIpQLScLURE/viewform?u={n}"
    for i, frm in enumerate(["a@one.example", "b@two.example", "c@three.example"]):
        _record(store, frm, form.format(n=i), now - HOUR, n=i)
    hit = await _scan(store, settings, "d@four.example", form.format(n=9), now)
    assert hit is not None and hit.data == {**hit.data, "kind": "url_page", "domain": "docs.google.com/forms/d/e/1FAIpQLScLURE"}
    assert hit.evidence.startswith("the page docs.google.com/forms/d/e/1FAIpQLScLURE first reached this site")
    # Another form on the same host is another destination, and a form linked before the window is old.
    assert await _scan(store, settings, "d@four.example", "https://docs.google.com/forms/d/e/1FAIpQLSeNEW/viewform", now) is None
    for i, frm in enumerate(["a@one.example", "b@two.example", "c@three.example"]):
        _record(store, frm, old_form, now - HOUR, n=90 + i)
    assert await _scan(store, settings, "d@four.example", old_form, now) is None
    # Google's own mail about a form is the platform's, not a sender of the wave.
    assert await _scan(store, settings, "forms-receipts-noreply@google.com", form.format(n=9), now) is None


async def test_pages_count_only_once_the_store_has_recorded_them_for_a_window(store: Store, settings: Settings) -> None:
    # A site that upgraded has a window of mail behind it but no page rows in it: every form
    # would look new, so pages say nothing until the first page row is older than the window.
    now = time.time()
    _history(store, now)
    form = "https://forms.gle/Lure{n}"
    for i, frm in enumerate(["a@one.example", "b@two.example", "c@three.example"]):
        _record(store, frm, form.format(n=""), now - HOUR, n=i)
    assert await _scan(store, settings, "d@four.example", form.format(n=""), now) is None
    _record(store, "events@partner0.example", "https://forms.gle/Survey", now - 3 * DAY, n=80)
    hit = await _scan(store, settings, "d@four.example", form.format(n=""), now)
    assert hit is not None and hit.data["domain"] == "forms.gle/Lure"


async def test_separate_accounts_at_a_free_mail_provider_are_separate_senders(store: Store, settings: Settings) -> None:
    # Stolen or throw-away webmail accounts: one provider's domain, unrelated people.
    now = time.time()
    _history(store, now)
    for i, frm in enumerate(["li.hua1987@163.com", "zhangwei.hr@163.com", "finance.notice@qq.com"]):
        _record(store, frm, LURE.format(n=i), now - HOUR, n=i)
    hit = await _scan(store, settings, "wang.fang@163.com", LURE.format(n=9), now)
    assert hit is not None and "4 unrelated senders" in hit.evidence
    assert {"li.hua1987@163.com", "wang.fang@163.com", "finance.notice@qq.com"} <= set(hit.data["senders"])


async def test_a_released_copy_dismisses_the_wave(store: Store, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Releasing a copy from quarantine is an administrator's word that it is no wave."""
    import mailmoat.analyzers.wave as wave

    now = time.time()
    _history(store, now)
    ids = _three_copies(store, now, Action.QUARANTINE)
    an = WaveAnalyzer(AnalyzerEnv(settings=settings, store=store))

    async def judge(frm: str) -> list[Finding]:
        env = Envelope(frm, [f"wang@{ORG}"], received_at=now)
        return await an.analyze(AnalysisContext(message=parse(_raw(frm, LURE.format(n=9))), envelope=env, settings=settings))

    assert [f.symbol for f in await judge("d@four.example")] == ["LINK_DOMAIN_WAVE"]
    store.set_message_fields(ids[1], status="released")
    # What this process recognised stands until it asks the store again...
    assert [f.symbol for f in await judge("e@five.example")] == ["LINK_DOMAIN_WAVE"]
    monkeypatch.setattr(wave, "RECHECK_AFTER", 0.0)
    # ...which then finds the release.
    assert await judge("f@six.example") == []


async def test_the_waves_command_lists_what_the_sign_marked(store: Store, settings: Settings) -> None:
    """`mailmoat waves`: what an administrator on the terminal sees, and what the dashboard shows."""
    import json

    from typer.testing import CliRunner

    from mailmoat.cli import app

    base = ["--data-dir", settings.data_dir]
    r = CliRunner().invoke(app, ["waves", *base])
    assert r.exit_code == 0 and "no wave recognised in the last 48 h" in r.output
    now = time.time()
    _history(store, now)
    for i, frm in enumerate(["a@one.example", "b@two.example", "c@three.example"]):
        _record(store, frm, LURE.format(n=i), now - HOUR, n=i)
    for i, frm in enumerate(["d@four.example", "x.li@163.com", "y.wang@163.com"]):
        env = Envelope(frm, [f"wang@{ORG}"], received_at=now - (3 - i) * 60)
        msg = parse(_raw(frm, LURE.format(n=10 + i), n=10 + i))
        found = await WaveAnalyzer(AnalyzerEnv(settings=settings, store=store)).analyze(
            AnalysisContext(message=msg, envelope=env, settings=settings)
        )
        assert [f.symbol for f in found] == ["LINK_DOMAIN_WAVE"]
        action = Action.QUARANTINE if i else Action.TAG
        store.record_message(env, msg, Verdict(action, 10.5 if i else 8.0, found))
    r = CliRunner().invoke(app, ["waves", *base, "--format", "json"])
    assert r.exit_code == 0, r.output
    (w,) = json.loads(r.output)
    assert (w["domain"], w["messages"], w["senders"], w["held"]) == ("gov-subsidy-claim.top", 3, 3, 2)
    r = CliRunner().invoke(app, ["waves", *base])
    assert r.exit_code == 0 and "gov-subsidy-claim.top" in r.output
    # Older than asked for: nothing.
    r = CliRunner().invoke(app, ["waves", *base, "--hours", "0.01", "--format", "json"])
    assert json.loads(r.output) == []


async def test_a_restored_recall_dismisses_the_wave(store: Store, settings: Settings) -> None:
    """Putting back a recall of one copy whole is, like a release, an administrator's word that it is no wave."""
    from mailmoat.store.recall_models import RecallCopyRow, RecallJobRow

    now = time.time()
    _history(store, now)
    ids = _three_copies(store, now, Action.TAG)
    assert await _scan(store, settings, "d@four.example", LURE.format(n=9), now) is not None

    def recall_job(job_id: str, state: str) -> None:
        with store.session() as s:
            s.add(RecallJobRow(id=job_id, created_at=now, state=state, trigger="auto:wave"))
            s.add(RecallCopyRow(job_id=job_id, message_id=ids[0], tracking_id=f"{ids[0]}-{job_id}",
                                recipient=f"wang@{ORG}", mailbox=f"wang@{ORG}", state="restored"))

    recall_job("01JOBRESTOREDPART000000000", "done")  # one copy put back, the job not undone: still a wave
    assert await _scan(store, settings, "d@four.example", LURE.format(n=9), now) is not None
    recall_job("01JOBRESTOREDWHOLE00000000", "restored")
    assert await _scan(store, settings, "d@four.example", LURE.format(n=9), now) is None
