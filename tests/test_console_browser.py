"""The console in a real browser: a QR phishing message sent through SMTP is found, explained, recalled and restored."""

from __future__ import annotations

import contextlib
import email
import email.policy
import os
import re
import smtplib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest

from mailmoat.config import Settings
from mailmoat.store.db import Store
from tests.support import qrmail
from tests.support.browser import (
    ConsoleServer,
    add_user,
    chromium,
    chromium_missing,
    login,
    logout,
    wait_ready,
)
from tests.support.gateway import inprocess_gateway, maildir_copies, wait_for


def browser(fn: Any) -> Any:
    """A test that drives Debian's Chromium (skipped, with the reason, only when it is not installed)."""
    fn = pytest.mark.skipif(bool(chromium_missing()), reason=chromium_missing() or "chromium present")(fn)
    return pytest.mark.browser(fn)


# The README's screenshots are refreshed on request (MAILMOAT_SCREENSHOTS=docs/screenshots); by default a
# test run writes them to a temporary directory so that it never changes the checkout.
SCREENSHOTS = Path(os.environ.get("MAILMOAT_SCREENSHOTS") or tempfile.mkdtemp(prefix="mm-screens-"))
DOMAIN = "victim-corp.com"
VICTIMS = [f"zhang.wei@{DOMAIN}", f"li.na@{DOMAIN}"]
ADMIN = ("secadmin", "correct horse battery")
AUDITOR = ("inspector", "read only but thorough")
CID = "part1.9F2B@victim-corp.com"


def _send(host: str, port: int, mail_from: str, rcpts: list[str], raw: bytes) -> str:
    with smtplib.SMTP(host, port, timeout=30) as c:
        c.ehlo("mx.sender.example")
        c.mail(mail_from)
        for r in rcpts:
            c.rcpt(r)
        code, reply = c.data(raw)
    assert code == 250, reply
    return reply.decode().rsplit(" ", 1)[1]


def _clean(sender: str, rcpt: str, subject: str) -> bytes:
    return (
        f"From: {sender}\r\nTo: {rcpt}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{abs(hash(subject))}@{sender.rpartition('@')[2]}>\r\n\r\nThe figures are on the portal.\r\n"
    ).encode()


def _in_inbox(settings: Settings, rcpt: str, tracking_id: str) -> bool:
    """The copy is in the user's INBOX (not in any folder such as the hidden recall folder)."""
    root = settings.mail_dir / rcpt
    return any(tracking_id in p.name for sub in ("new", "cur") if (root / sub).is_dir() for p in (root / sub).iterdir())


def _record_wave(settings: Settings, senders: list[str], dest: str) -> None:
    """Copies of a wave, recorded as the gateway records mail that LINK_DOMAIN_WAVE marked."""
    from mailmoat.model import Action, Envelope, Finding, Verdict
    from mailmoat.parse import parse
    from mailmoat.store.db import Store

    store = Store(settings.db_url, raw_dir=settings.raw_dir)
    try:
        for i, sender in enumerate(senders):
            raw = f"From: Finance <{sender}>\r\nTo: {VICTIMS[0]}\r\nSubject: 补贴申领 {i}\r\n\r\nhttps://{dest}/claim?u={i}\r\n"
            sign = Finding("LINK_DOMAIN_WAVE", 3.0, f"{dest} ...", "wave", "campaign", {"domain": dest, "kind": "url_host"})
            action = Action.QUARANTINE if i else Action.TAG
            store.record_message(Envelope(sender, [VICTIMS[0]]), parse(raw.encode()), Verdict(action, 10.5, [sign]), "")
    finally:
        store.close()


@contextlib.contextmanager
def _auditor_on_the_dashboard(settings: Settings, tmp_path: Path) -> Iterator[tuple[Any, Any, list[str]]]:
    """(console server, page, page errors): an auditor logged in, on the dashboard."""
    add_user(settings, *AUDITOR, "auditor")
    with ConsoleServer(settings) as web, chromium(tmp_path / "profile") as ctx:
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        login(page, web.url, *AUDITOR)
        yield web, page, errors


def _shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("() => { document.getElementById('flash').hidden = true; }")  # a passing notice is no part of the page
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


@browser
def test_console_qr_phish_find_explain_recall_restore_audit(settings: Settings, tmp_path: Path) -> None:
    settings.server.domains = [DOMAIN]
    settings.server.workers = 0
    # The site only tags at this score, so the message reaches both mailboxes and has to be recalled later.
    settings.policy.thresholds.quarantine = 500.0
    settings.policy.thresholds.reject = 1000.0
    with inprocess_gateway(settings) as gw:
        mail_id = _send(gw.host, gw.port, "notice@hrss-gov-cn.top", VICTIMS, qrmail.stage3_cid_attachment())
        for i, sender in enumerate(["news@partner.example", "billing@supplier.example", "events@partner.example"]):
            _send(gw.host, gw.port, sender, [VICTIMS[i % 2]], _clean(sender, VICTIMS[i % 2], f"Quarterly figures {i}"))
        tids = [f"{mail_id}-{i:04d}" for i in range(len(VICTIMS))]
        for rcpt, tid in zip(VICTIMS, tids, strict=True):
            wait_for(lambda r=rcpt, t=tid: t in maildir_copies(settings.mail_dir, r), what=f"the copy for {rcpt}")
    add_user(settings, *ADMIN, "admin")
    add_user(settings, *AUDITOR, "auditor")
    # One campaign recalled earlier: its near copies are held even though no model exists yet.
    from array import array

    from mailmoat.classify import model_path, near_copy_path
    from mailmoat.classify.nearcopy import K, NearCopies

    remembered = NearCopies()
    remembered.add("01EARLIERRECALL000000000000", "phish", array("Q", range(1, K + 1)))
    remembered.save(near_copy_path(model_path(settings)))

    with ConsoleServer(settings) as web, chromium(tmp_path / "profile") as ctx:
        base = web.url
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))

        # Log in; the dashboard shows the day's volume and the QR threat.
        login(page, base, *ADMIN)
        assert page.locator("#chart-threats svg rect").count() > 0
        assert page.text_content("#tiles b") == "4"
        assert VICTIMS[0] in (page.text_content("#top-recipients") or "")
        # A fresh install has no classifier model, and the dashboard says how to train one.
        assert "mailmoat train --ham" in (page.locator("#classifier-note").text_content() or "")
        assert "Near copies of 1 recalled or trained" in (page.locator("#near-copies").text_content() or "")

        # The Recall page alone says how a recall starts: find the mail first.
        page.click("a[data-nav=recall]")
        wait_ready(page)
        assert page.is_visible("#recall-how") and page.is_hidden("#new-recall")
        # Find the message by its QR payload (the recall selectors).
        page.click("a[data-nav=messages]")
        wait_ready(page)
        page.fill("#sel-qr", "gov-subsidy-claim")
        page.click("#search-submit")
        page.wait_for_function("() => document.querySelectorAll('#message-table tbody tr').length === 1")
        row = page.locator(f"#message-table tr[data-id='{mail_id}']")
        assert row.count() == 1
        row.locator("a.msg-link").click()
        page.wait_for_url(f"{base}/messages/{mail_id}")
        wait_ready(page)

        # The decoded QR URL, and the cid chain from the HTML to the octet-stream attachment.
        assert page.text_content("#qr-table .qr-payload") == qrmail.SUBSIDY_URL
        chain = page.text_content("#qr-table .cid-chain") or ""
        assert f'cid:{CID}' in chain and "application/octet-stream" in chain and "image/png" in chain
        ev = page.text_content("#findings-table tr[data-symbol=QR_IN_CID_ATTACHMENT]") or ""
        assert qrmail.SUBSIDY_URL in ev and f"cid {CID}" in ev
        assert "type mismatch" in (page.text_content("#attachments") or "")
        assert "扫描下方二维码" in (page.text_content("#preview") or "")
        assert page.locator("#preview *").count() == 0  # text, never markup
        _shot(page, "message-detail.png")

        # Recall from every mailbox: preview, confirm, watch it finish.
        page.click("#recall-message")
        page.wait_for_url(re.compile(r".*/recall\?mail_id="))
        wait_ready(page)
        assert page.text_content("#pv-copies") == "2" and page.is_hidden("#recall-how")
        assert sorted(page.locator("#pv-mailboxes li").all_text_contents()) == sorted(VICTIMS)
        page.fill("#recall-reason", "subsidy QR phishing wave")
        _shot(page, "recall-preview.png")
        page.click("#recall-confirm")
        page.wait_for_url(re.compile(r".*/recall/[0-9A-Z]+$"))
        job_id = page.url.rsplit("/", 1)[1]
        page.wait_for_selector("body[data-job-state=done]")
        states = {r.get_attribute("data-tracking"): r.get_attribute("data-state") for r in page.locator("#copies-table tbody tr").all()}
        assert states == {tids[0]: "recalled", tids[1]: "recalled"}
        for rcpt, tid in zip(VICTIMS, tids, strict=True):
            assert not _in_inbox(settings, rcpt, tid)

        # Restore one copy: it is back in zhang.wei's inbox, the other stays recalled.
        page.click(f"#copies-table tr[data-tracking='{tids[0]}'] button.restore-one")
        page.wait_for_selector(f"#copies-table tr[data-tracking='{tids[0]}'][data-state=restored]")
        assert page.get_attribute(f"#copies-table tr[data-tracking='{tids[1]}']", "data-state") == "recalled"
        assert _in_inbox(settings, VICTIMS[0], tids[0]) and not _in_inbox(settings, VICTIMS[1], tids[1])
        _shot(page, "recall.png")

        # Both actions are in the audit log, by this user, about this job.
        page.goto(f"{base}/audit?action=recall.")
        wait_ready(page)
        rows = page.locator("#audit-table tbody tr")
        actions = {(r.get_attribute("data-action"), (r.text_content() or "")) for r in rows.all()}
        for action in ("recall.plan", "recall.run", "recall.restore"):
            assert any(a == action and job_id in text and ADMIN[0] in text for a, text in actions), action
        restore_text = next(t for a, t in actions if a == "recall.restore")
        assert tids[0] in restore_text and tids[1] not in restore_text

        # The dashboard after the wave: the threat categories, the recall just made, and a wave of one
        # new link from three sender domains, whose link opens the mail that led there.
        wave = "gov-subsidy-2026.web.app"
        _record_wave(settings, ["a@one.example", "b@two.example", "c@three.example"], wave)
        page.click("a[data-nav=dashboard]")
        wait_ready(page)
        page.locator(f"#recent-recalls a[href='/recall/{job_id}']").wait_for()
        cells = page.locator(f"#waves-table tr[data-domain='{wave}'] td").all_text_contents()
        assert cells[:4] == [wave, "3", "3", "2"]
        _shot(page, "dashboard.png")
        page.click(f"#waves-table tr[data-domain='{wave}'] a")
        page.wait_for_url(re.compile(r".*/messages\?url_domain="))
        page.wait_for_function("() => document.querySelectorAll('#message-table tbody tr').length === 3")
        assert page.input_value("#sel-url_domain") == wave

        # An auditor reads everything but cannot recall: no button, and the API refuses.
        logout(page, base)
        login(page, base, *AUDITOR)
        page.goto(f"{base}/messages/{mail_id}")
        wait_ready(page)
        assert page.text_content("#qr-table .qr-payload") == qrmail.SUBSIDY_URL
        assert page.locator("#documents-section").is_hidden()  # a picture is no document to read
        assert page.locator("#recall-message").count() == 0
        page.goto(f"{base}/recall?mail_id={mail_id}")
        wait_ready(page)
        assert page.locator("#new-recall").count() == 0 and page.locator("#readonly-note").is_visible()
        page.goto(f"{base}/recall/{job_id}")
        wait_ready(page)
        assert page.locator("button.restore-one").count() == 0 and page.locator("#restore-all").count() == 0
        status = page.evaluate(
            """async (mailId) => {
                const csrf = document.cookie.split('; ').find((c) => c.startsWith('mm_csrf=')).split('=')[1];
                const r = await fetch('/api/v1/recall/jobs', {method: 'POST', credentials: 'same-origin',
                    headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf},
                    body: JSON.stringify({mail_id: mailId, run: true})});
                return r.status;
            }""",
            mail_id,
        )
        assert status == 403
        page.goto(f"{base}/audit")
        wait_ready(page)
        assert page.locator("#audit-table tbody tr").count() > 0
        page.goto(f"{base}/users")
        assert page.locator("#users-table").count() == 0  # administrators only
        page.goto(f"{base}/lang/zh?next=%2F")
        wait_ready(page)
        assert page.text_content("a[data-nav=dashboard]") == "概览"
        _shot(page, "dashboard-zh.png")
        assert errors == []
    for rcpt, tid in zip(VICTIMS[1:], tids[1:], strict=True):
        assert tid in maildir_copies(settings.mail_dir, rcpt)  # recalled into the hidden folder, not destroyed


@browser
def test_console_quarantine_release_every_page_and_chinese(settings: Settings, tmp_path: Path) -> None:
    """A quarantined message is released from the console, first to one recipient from its page, then
    to the other from the quarantine; every page renders in English and Chinese."""
    settings.server.domains = [DOMAIN]
    settings.server.workers = 0
    with inprocess_gateway(settings) as gw:
        held = _send(gw.host, gw.port, "notice@hrss-gov-cn.top", VICTIMS, qrmail.stage3_cid_attachment())
        wait_for(lambda: _status(settings, held) == "quarantined", what="the message in quarantine")
    assert not maildir_copies(settings.mail_dir, VICTIMS[0]) and not maildir_copies(settings.mail_dir, VICTIMS[1])
    add_user(settings, *ADMIN, "admin")
    from mailmoat.digest.requests import record_request

    store = Store(settings.db_url)
    try:  # both recipients asked for their copies from their digests
        assert all(record_request(store, held, v) for v in VICTIMS)
    finally:
        store.close()
    with ConsoleServer(settings) as web, chromium(tmp_path / "profile") as ctx:
        base = web.url
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        # A page asked for before logging in comes back after the login; a wrong password is refused.
        page.goto(f"{base}/quarantine")
        page.wait_for_url(re.compile(r".*/login\?next=%2Fquarantine$"))
        page.fill("#username", ADMIN[0])
        page.fill("#password", "wrong password!")
        page.click("#login-submit")
        page.wait_for_selector("#login-error:not([hidden])")
        page.fill("#password", ADMIN[1])
        page.click("#login-submit")
        page.wait_for_url(f"{base}/quarantine")
        wait_ready(page)
        assert page.locator("#quarantine-table .release-requested").count() == 1

        # The message's page shows who asked; one request is declined, the copy stays held.
        page.goto(f"{base}/messages/{held}")
        wait_ready(page)
        first, second = (f"#copies-table tr[data-recipient='{v}']" for v in VICTIMS)
        assert page.locator("#copies-table .release-request").count() == 2
        page.once("dialog", lambda d: d.accept("It is a phishing lure"))  # the reason, told to the recipient
        page.click(f"{first} button.decline-request")
        page.wait_for_selector(f"{first} .release-request", state="detached")
        assert page.text_content("#flash") == f"Declined: a notice went to {VICTIMS[0]}"
        # Drawn again after the decline, the page's buttons still act once.
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.accept()))
        page.click("#deny-sender")
        page.wait_for_selector("#flash >> text=Added")
        assert len(dialogs) == 1, dialogs
        assert page.locator(f"{second} .release-request").count() == 1
        # One recipient's copy from the message's page (which answers their request): the other stays held.
        page.click(f"{second} button.release-copy")
        page.wait_for_selector(f"{second} .st-delivered")
        assert page.locator(f"#copies-table tr[data-recipient='{VICTIMS[0]}'] button.release-copy").count() == 1
        assert list(wait_for(lambda: maildir_copies(settings.mail_dir, VICTIMS[1]), what="the one copy")) == [f"{held}-0001"]
        # The first recipient got the notice that their request was declined, not the message.
        assert held not in " ".join(maildir_copies(settings.mail_dir, VICTIMS[0])) and _status(settings, held) == "quarantined"
        notices = [email.message_from_bytes(f.read_bytes(), policy=email.policy.default)
                   for files in maildir_copies(settings.mail_dir, VICTIMS[0]).values() for f in files]
        assert len(notices) == 1 and "Their reason: It is a phishing lure" in notices[0].get_body().get_content()  # type: ignore[attr-defined, union-attr]

        page.goto(f"{base}/quarantine")
        wait_ready(page)
        rows = page.locator("#quarantine-table tbody tr")
        assert rows.count() == 1 and qrmail.SUBJECT in (rows.first.text_content() or "")
        assert rows.first.locator(".st-partly").text_content() == "partly released"
        assert rows.first.locator(".release-requested").count() == 0  # declined, answered: nobody waits
        why = rows.first.locator(".why-held div").all_text_contents()  # its strongest signs, strongest first
        assert len(why) == 3 and why[0].startswith("SUBSIDY_FRAUD_WITH_QR "), why
        page.click("#quarantine-table button.primary")  # after a confirm (accepted by the handler above)
        assert dialogs[-1].startswith(f"Release: {qrmail.SUBJECT}"), dialogs
        page.wait_for_selector("#quarantine p.empty")
        assert f"{held}-0000" in wait_for(lambda: maildir_copies(settings.mail_dir, VICTIMS[0]), what="the released copy")
        assert len(maildir_copies(settings.mail_dir, VICTIMS[1])[f"{held}-0001"]) == 1
        assert _status(settings, held) == "released"

        for path in ("/", "/messages", "/quarantine", "/recall", "/incidents", "/indicators", "/rules", "/audit", "/users"):
            page.goto(base + path)
            wait_ready(page)
        page.click("#lang-switch")
        page.wait_for_url(f"{base}/users")
        wait_ready(page)
        assert page.text_content("a[data-nav=dashboard]") == "概览"
        assert page.get_attribute("html", "lang") == "zh-CN"
        page.goto(f"{base}/audit")
        wait_ready(page)
        assert page.locator("#audit-table tr[data-action='quarantine.release']").count() == 2
        assert "审计日志" in (page.text_content("h1") or "")
        page.goto(f"{base}/")
        wait_ready(page)
        assert "每日威胁" in (page.text_content("main") or "")
        assert errors == []


@browser
def test_message_page_shows_the_attached_documents_text_as_text(settings: Settings, tmp_path: Path) -> None:
    """A PDF locked with the password in the mail: the page says it was opened and shows its words,
    markup included, as text."""
    from tests.support.webkit import locked_notice

    settings.server.domains = [DOMAIN]
    settings.server.workers = 0
    with inprocess_gateway(settings) as gw:
        mail_id = _send(gw.host, gw.port, "notice@subsidy-center.example", VICTIMS[:1], locked_notice())
        wait_for(lambda: _status(settings, mail_id) in ("quarantined", "delivered"), what="the message recorded")
    add_user(settings, *AUDITOR, "auditor")
    with ConsoleServer(settings) as web, chromium(tmp_path / "profile") as ctx:
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("dialog", lambda d: errors.append(f"dialog: {d.message}"))
        login(page, web.url, *AUDITOR)
        page.goto(f"{web.url}/messages/{mail_id}")
        wait_ready(page)
        doc = page.locator("#documents .document")
        assert doc.count() == 1 and page.locator("#documents-section").is_visible()
        head = doc.first.locator("div").first.text_content() or ""
        assert "补贴通知.pdf" in head and "locked" in head and "opened with the password" in head
        text = page.text_content("#documents pre.document-text") or ""
        assert "工资补贴" in text and "<script>alert(2)</script>" in text
        assert page.locator("#documents script").count() == 0
        assert "打开密码" in (page.text_content("#preview") or "")
        assert errors == []


@browser
def test_dashboard_names_a_language_the_model_learnt_only_from_spam(settings: Settings, tmp_path: Path) -> None:
    """A model that learnt German only from phishing holds German legitimate mail: the dashboard
    says so beside the model's state, in the console's language."""
    from mailmoat.classify import BayesModel, Classifier, model_path

    clf = Classifier(model_path(settings), BayesModel(), fresh=True)
    clf.learn_tokens({"invoice", "meeting"}, "ham", name="h1")
    clf.learn_tokens({"gewinnspiel", "gutschein"}, "phish", name="p1")
    clf.model.languages = {"en": [1, 0], "de": [0, 30]}
    clf.save()
    with _auditor_on_the_dashboard(settings, tmp_path) as (_, page, errors):
        page.wait_for_selector("#classifier-languages")
        assert "Classifier model: 1 ham" in (page.text_content("#classifier-state") or "")
        note = page.text_content("#classifier-languages") or ""
        assert "only from spam and phishing" in note and note.endswith("German")
        assert errors == []


@browser
@pytest.mark.usefixtures("roomy_disk")
def test_dashboard_says_what_needs_attention_in_the_consoles_language(settings: Settings, tmp_path: Path) -> None:
    """A copy waiting for a mail system that is down: the dashboard says so, with the system's last
    reply, as `mailmoat status` does; with nothing to say it says nothing."""
    from mailmoat.model import Action, Address, Envelope, Message, Verdict
    from mailmoat.store.db import Store

    store = Store(settings.db_url, raw_dir=settings.raw_dir)
    env = Envelope("carol@partner.example", [VICTIMS[0]])
    store.record_message(env, Message(subject="Minutes", from_=Address("", "carol@partner.example")), Verdict(Action.DELIVER, 0.0), "")
    store.close()
    with _auditor_on_the_dashboard(settings, tmp_path) as (web, page, errors):
        page.wait_for_selector("#tiles b")
        page.wait_for_function("document.querySelector('#classifier').childElementCount > 0")
        assert page.locator("#attention .attention").count() == 0
        store = Store(settings.db_url, raw_dir=settings.raw_dir)
        store.claim(env.id, [(0, VICTIMS[0], VICTIMS[0], env.tracking_id(0))], lease_until=0, initial="deferred")
        with store.session() as s:
            from mailmoat.store.models import DeliveryRow

            s.query(DeliveryRow).filter(DeliveryRow.message_id == env.id).update({"reply": "421 4.3.2 <b>down</b>"})
        store.close()
        page.reload()
        note = page.wait_for_selector("#attention .attention[data-kind=queue_deferred]")
        assert note is not None and (note.text_content() or "").startswith("1 copy waits for the mail system")
        assert "Last reply: 421 4.3.2 <b>down</b>" in (note.text_content() or "")  # shown as text, not markup
        page.goto(f"{web.url}/lang/zh?next=%2F")
        note = page.wait_for_selector("#attention .attention[data-kind=queue_deferred]")
        assert note is not None and "份邮件副本正在等待邮件系统" in (note.text_content() or "")
        assert errors == []


@browser
def test_reports_page_condemns_and_dismisses_what_colleagues_reported(settings: Settings, tmp_path: Path) -> None:
    """Two messages reported by colleagues through the report mailbox: one is condemned from the
    Reports page (its copies recalled), the other dismissed; the message's page names the reporters."""
    reporter, box = VICTIMS[1], f"phish@{DOMAIN}"
    settings.server.domains = [DOMAIN]
    settings.server.internal_listen = "127.0.0.1:0"
    settings.server.workers = 0
    settings.policy.report_addresses = [box]
    add_user(settings, *ADMIN, "admin")
    with inprocess_gateway(settings) as gw:
        lure = _send(gw.host, gw.port, "notice@payroll-review.example", VICTIMS, _clean("notice@payroll-review.example", VICTIMS[0], "Payroll review"))
        news = _send(gw.host, gw.port, "news@letters.example", VICTIMS, _clean("news@letters.example", VICTIMS[0], "Weekly notes"))
        wait_for(lambda: _in_inbox(settings, reporter, f"{lure}-0001") and _in_inbox(settings, reporter, f"{news}-0001"), what="delivery")
        for sender, subject in (("notice@payroll-review.example", "Payroll review"), ("news@letters.example", "Weekly notes"),
                                ("chef@canteen.example", "Lunch menu")):  # the last was never sent: not found
            report = f"From: {reporter}\r\nTo: {box}\r\nSubject: FW: {subject}\r\n\r\n-----Original Message-----\r\n" \
                     f"From: {sender}\r\nSubject: {subject}\r\n\r\nsuspect\r\n"
            _send("127.0.0.1", gw.internal_port, reporter, [box], report.encode())
        wait_for(lambda: _status(settings, lure) and len(_reported(settings)) == 3, what="the reports linked")
    (unmatched,) = [r for r in _reported(settings) if not r["mail_id"]]
    with ConsoleServer(settings) as web, chromium(tmp_path / "profile") as ctx:
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("dialog", lambda d: d.accept())
        login(page, web.url, *ADMIN)
        page.goto(f"{web.url}/messages/{lure}")
        wait_ready(page)
        assert page.text_content("#reported-by") == reporter
        assert page.is_hidden("#uncondemn-message")  # not marked a threat (yet)
        page.goto(f"{web.url}/reports")
        wait_ready(page)
        assert page.locator("#reports-table tbody tr").count() == 3
        # A report whose message was not found links to the report itself.
        report_link = page.locator(f"#reports-table tr[data-key='{unmatched['key']}'] a.report-mail")
        assert report_link.get_attribute("href") == f"/messages/{unmatched['key']}"
        page.click(f"#reports-table tr[data-key='{unmatched['key']}'] button.dismiss-report")
        page.wait_for_selector(f"#reports-table tr[data-key='{unmatched['key']}']", state="detached")
        page.click(f"#reports-table tr[data-key='{lure}'] button.condemn-report")
        page.wait_for_selector(f"#reports-table tr[data-key='{lure}']", state="detached")
        wait_for(lambda: not _in_inbox(settings, VICTIMS[0], f"{lure}-0000") and not _in_inbox(settings, reporter, f"{lure}-0001"),
                 what="the condemned message recalled")
        page.click(f"#reports-table tr[data-key='{news}'] button.dismiss-report")
        page.wait_for_selector("#reports p.empty")
        assert _in_inbox(settings, reporter, f"{news}-0001")  # dismissed: nothing recalled
        page.check("#rep-all")
        page.wait_for_selector(f"#reports-table tr[data-key='{news}'][data-state='dismissed']")
        assert page.locator(f"#reports-table tr[data-key='{lure}']").get_attribute("data-state") in ("condemned", "recalled")
        # Condemned by mistake: the message's page takes the mark back and says its copies stay recalled.
        page.goto(f"{web.url}/messages/{lure}")
        wait_ready(page)
        assert page.locator("#copies-table .copy-recall[data-state=recalled]").count() == 2  # each copy, with its job
        page.click("#uncondemn-message")
        page.wait_for_selector("#msg-status >> text=processed")
        assert "restore recall job" in (page.text_content("#flash") or "") and page.is_hidden("#uncondemn-message")
        assert not _in_inbox(settings, VICTIMS[0], f"{lure}-0000")
        assert errors == []


def _reported(settings: Settings) -> list[dict[str, Any]]:
    from mailmoat.reports import reported

    store = Store(settings.db_url)
    try:
        with store.session() as s:
            return reported(s)
    finally:
        store.close()


def _status(settings: Settings, mail_id: str) -> str:
    from mailmoat.store.db import Store

    store = Store(settings.db_url, raw_dir=settings.raw_dir)
    try:
        row = store.get_message(mail_id)
        return row.status if row is not None else ""
    finally:
        store.close()


def test_pages_need_login_escape_data_and_refuse_open_redirects(settings: Settings) -> None:
    """Without a browser: pages redirect to the login, page data is escaped, `next` stays on this site, roles gate pages."""
    from fastapi.testclient import TestClient

    from mailmoat.web.app import create_app

    add_user(settings, *ADMIN, "admin")
    add_user(settings, *AUDITOR, "auditor")
    hostile = "%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E%22%27"
    with TestClient(create_app(settings)) as anon:
        r = anon.get(f"/messages/{hostile}", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login?next=" + quote(f"/messages/{unquote(hostile)}", safe="")
        assert anon.get("/login?next=//evil.example").status_code == 200
        page = anon.get("/login?next=//evil.example").text
        assert 'data-next="/"' in page and 'data-next="//' not in page
        for sneaky in ("/%09/evil.example/phish", "/%0A/evil.example", "/%0D/evil.example", "/%7F/evil.example"):
            # A browser drops the tab or line break: the target would be //evil.example.
            assert 'data-next="/"' in anon.get(f"/login?next={sneaky}").text, sneaky
        r = anon.get("/lang/zh?next=https://evil.example", follow_redirects=False)
        assert r.headers["location"] == "/" and "mm_lang=zh" in r.headers["set-cookie"]
    with TestClient(create_app(settings)) as admin:
        assert admin.post("/api/v1/auth/login", json={"username": ADMIN[0], "password": ADMIN[1]}).status_code == 200
        r = admin.get(f"/messages/{hostile}")
        assert r.status_code == 200 and "<img src=x" not in r.text
        assert "&lt;img src=x onerror=alert(1)&gt;" in r.text and "\\u003cimg src=x" in r.text
        # console.js is a static file: the page works under a policy that forbids inline scripts.
        assert "default-src 'self'" in r.headers["content-security-policy"] and "<script>" not in r.text
        r = admin.get("/login?next=/audit", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/audit"
        assert admin.get("/users").status_code == 200
    with TestClient(create_app(settings)) as auditor:
        auditor.post("/api/v1/auth/login", json={"username": AUDITOR[0], "password": AUDITOR[1]})
        assert auditor.get("/users").status_code == 403
        page = auditor.get("/audit").text
        assert 'data-nav="users"' not in page and 'data-nav="audit"' in page
        assert 'id="recall-message"' not in auditor.get("/messages/x").text
        auditor.cookies.set("mm_lang", "zh")
        zh = auditor.get("/").text
        assert "每日威胁（按类别）" in zh and 'lang="zh-CN"' in zh


def test_every_ui_string_exists_in_english_and_chinese() -> None:
    import mailmoat.web as webpkg
    from mailmoat.web.i18n import keys, strings

    root = Path(webpkg.__file__).parent
    used = set(re.findall(r'\bT\("([a-z_.]+)"\)', (root / "static" / "console.js").read_text(encoding="utf-8")))
    for tpl in (root / "templates").glob("*.html"):
        used |= set(re.findall(r"t\('([a-z_.]+)'\)", tpl.read_text(encoding="utf-8")))
    assert used and used <= set(keys())
    en, zh = strings("en"), strings("zh")
    assert all(en[k] and zh[k] for k in keys())
    assert {k for k in keys() if en[k] == zh[k] and re.search(r"[a-z]{4}", en[k])} <= {"app.name", "msg.sel.message_id"}


@browser
def test_restoring_a_whole_job_follows_the_judging_again_of_its_campaign(settings: Settings, tmp_path: Path) -> None:
    """A message condemned by mistake took the rest of its campaign with it. Restore whole job:
    every copy is back, the follow-up's jobs are named, and the page follows the judging again of
    their messages until it is done."""
    from typer.testing import CliRunner

    from mailmoat.cli import app as cli_app
    from tests.support.gateway import write_toml
    from tests.test_recall_siblings import ORG, STAFF, deliver_the_campaign, in_inbox, verdict_job

    ids = deliver_the_campaign(settings)
    cfg = write_toml(tmp_path / "mailmoat.toml", {"data_dir": settings.data_dir, "server": {"domains": [ORG]}})
    assert CliRunner().invoke(cli_app, ["recall", "condemn", ids[STAFF[0]], "--config", str(cfg)]).exit_code == 0
    assert [in_inbox(settings, r) for r in STAFF] == [0, 0, 0, 1]
    add_user(settings, *ADMIN, "admin")
    job = verdict_job(settings)
    with ConsoleServer(settings) as web, chromium(tmp_path / "profile") as ctx:
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        login(page, web.url, *ADMIN)
        page.goto(f"{web.url}/recall/{job}")
        wait_ready(page)
        assert page.locator("#job-follow-ups a.follow-up[data-state=done]").count() == 2
        page.click("#restore-all")
        page.wait_for_selector("body[data-job-state=restored]")
        assert "the rest of its campaign" in (page.text_content("#flash") or "")
        # Followed until the judging again is done: the note goes, the follow-up's jobs read restored.
        page.wait_for_selector("#job-follow-ups a.follow-up[data-state=restored] >> nth=1")
        page.wait_for_selector("#rejudging", state="detached")
        assert [in_inbox(settings, r) for r in STAFF] == [1, 1, 1, 1]
        assert errors == []


@browser
def test_mail_text_that_reverses_itself_or_never_ends_cannot_fool_or_break_a_page(settings: Settings, tmp_path: Path) -> None:
    """A name written with a right-to-left override ("invoice\u202egnp.exe" shows "invoiceexe.png")
    is shown with the control named; a 4,000-character subject wraps instead of widening the page."""
    from email.header import Header

    settings.server.domains = [DOMAIN]
    settings.server.workers = 0
    add_user(settings, *ADMIN, "admin")
    subject = Header("W" * 4000 + " invoice\u202egnp.exe", "utf-8").encode()
    name = Header("Casino \u202eevil", "utf-8").encode()
    raw = (f"From: {name} <promo@casino.example>\r\nTo: {VICTIMS[0]}\r\n"
           f"Subject: {subject}\r\nMessage-ID: <bidi-1@casino.example>\r\n\r\nhello\r\n").encode()
    with inprocess_gateway(settings) as gw:
        mid = _send(gw.host, gw.port, "promo@casino.example", [VICTIMS[0]], raw)
        wait_for(lambda: _in_inbox(settings, VICTIMS[0], f"{mid}-0000"), what="delivery")
    with ConsoleServer(settings) as web, chromium(tmp_path / "profile") as ctx:
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        login(page, web.url, *ADMIN)
        for path in (f"/messages/{mid}", "/messages"):
            page.goto(f"{web.url}{path}")
            wait_ready(page)
            body = page.text_content("main") or ""
            assert "invoice\u27e8U+202E\u27e9gnp.exe" in body and "\u202e" not in body, path
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), path
        assert errors == []
