"""Colleagues' reports to the report mailbox: each linked to the message it reports, listed for the security team, condemned (by a person or after enough reports) or dismissed."""

from __future__ import annotations

import asyncio
import email
import json
import smtplib
import time
from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from mailmoat.cli import app as cli_app
from mailmoat.config import Settings
from mailmoat.parse import parse
from mailmoat.parse.subjects import bare_subject
from mailmoat.reports import reported_in
from mailmoat.reports.feedback import send_feedback
from mailmoat.reports.triage import condemn_reported, reported
from mailmoat.status import gather
from mailmoat.store.audit_models import AuditRow
from mailmoat.store.db import Store
from mailmoat.store.models import MessageRow
from mailmoat.store.report_models import ReportRow
from mailmoat.web.app import create_app
from tests.support.gateway import inprocess_gateway, maildir_copies, wait_for, write_toml
from tests.support.webkit import api_token

ORG = "victim-corp.com"
ALICE, BOB, CAROL = (f"{n}@{ORG}" for n in ("alice", "bob", "carol"))
REPORT_BOX = f"phish@{ORG}"
LURE_FROM = "hr-notice@payroll-portal.example"
LURE_SUBJECT = "Your payroll account needs an update"
runner = CliRunner()


def lure() -> bytes:
    """Mail that got past every engine: plain words and one link, delivered."""
    m = EmailMessage()
    m["From"] = f"HR Notice <{LURE_FROM}>"
    m["To"] = f"{ALICE}, {BOB}"
    m["Subject"] = LURE_SUBJECT
    m["Message-ID"] = "<payroll-1@payroll-portal.example>"
    m.set_content("Hello,\n\nplease review your payroll details before Friday: https://payroll-portal.example/review\n\nHR\n")
    return m.as_bytes()


def attached_report(reporter: str, original: bytes) -> bytes:
    """A report as Outlook's "forward as attachment" or a Report button writes it."""
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = reporter, REPORT_BOX, f"FW: {LURE_SUBJECT}"
    m.set_content("This looks like phishing.")
    m.add_attachment(original, maintype="message", subtype="rfc822", filename="suspect.eml")
    return m.as_bytes()


def inline_report(reporter: str, sender: str, subject: str, chinese: bool = False) -> bytes:
    """A report as a forward in the body, the forwarded header block quoted."""
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = reporter, REPORT_BOX, f"{'转发' if chinese else 'Fwd'}: {subject}"
    block = (f"------------------ 原始邮件 ------------------\n发件人：\"HR\" <{sender}>\n发送时间：2026年12月1日 9:00\n"
             f"收件人：{reporter}\n主题：{subject}\n" if chinese else
             f"-----Original Message-----\nFrom: HR Notice <{sender}>\nSent: Monday, December 1, 2026 9:00 AM\n"
             f"To: {reporter}\nSubject: {subject}\n")
    m.set_content(f"Is this real?\n\n{block}\nHello, please review your payroll details.\n")
    return m.as_bytes()


def report_settings(settings: Settings) -> Settings:
    settings.server.domains = [ORG]
    settings.server.listen = "127.0.0.1:0"
    settings.server.internal_listen = "127.0.0.1:0"
    settings.server.workers = 0
    settings.policy.report_addresses = [REPORT_BOX]
    return settings


def report_rows(store: Store) -> int:
    with store.session() as s:
        return int(s.scalar(select(func.count()).select_from(ReportRow)) or 0)


def lure_id(store: Store) -> str:
    with store.session() as s:
        got = s.scalar(select(MessageRow.id).where(MessageRow.subject == LURE_SUBJECT))
    assert got
    return got


def cli(settings: Settings, *args: str) -> tuple[int, str]:
    cfg = write_toml(Path(settings.data_dir).parent / "mailmoat.toml", {"data_dir": settings.data_dir})
    result = runner.invoke(cli_app, [*args, "--config", str(cfg)])
    return result.exit_code, result.output


def the_lure_and_its_reports(settings: Settings, store: Store, reports: list[tuple[str, Callable[[], bytes]]],
                             then: tuple[Callable[[], object], str] | None = None) -> None:
    """The lure to Alice and Bob through the MX; then each (reporter, report written after it
    arrived) through the internal listener; returns once every report is linked and, the gateway
    still running, `then`'s condition (with what it waits for) holds."""
    with inprocess_gateway(settings) as gw:
        with smtplib.SMTP(gw.host, gw.port, timeout=30) as c:
            c.sendmail(LURE_FROM, [ALICE, BOB], lure())
        wait_for(lambda: maildir_copies(settings.mail_dir, ALICE) and maildir_copies(settings.mail_dir, BOB), what="the lure")
        with smtplib.SMTP("127.0.0.1", gw.internal_port, timeout=30) as c:
            for reporter, write in reports:
                c.sendmail(reporter, [REPORT_BOX], write())
        wait_for(lambda: report_rows(store) == len(reports), what="the reports linked")
        if then is not None:
            wait_for(then[0], what=then[1])


def in_inbox(settings: Settings, rcpt: str) -> list[Path]:
    """The files in a recipient's inbox (a recall moves a copy out of it, to a hidden folder)."""
    root = settings.mail_dir / rcpt
    return [f for sub in ("new", "cur") if (root / sub).is_dir() for f in (root / sub).iterdir()]


def notices(settings: Settings, rcpt: str) -> list[Any]:
    """The gateway's own notices in a recipient's mailbox."""
    out = []
    for files in maildir_copies(settings.mail_dir, rcpt).values():
        for f in files:
            msg = email.message_from_bytes(f.read_bytes(), policy=policy.default)
            if msg.get("Auto-Submitted") == "auto-generated":
                out.append(msg)
    return out


def alices_copy(settings: Settings) -> bytes:
    ((path,),) = maildir_copies(settings.mail_dir, ALICE).values()
    return path.read_bytes()


def test_what_a_report_reports() -> None:
    original = lure().replace(b"Subject:", b"X-Mailmoat-Id: 01ABC-0000\nSubject:", 1)
    (r,) = reported_in(parse(attached_report(ALICE, original)))
    assert (r.tracking_id, r.message_id, r.sender, r.subject) == ("01ABC-0000", "<payroll-1@payroll-portal.example>", LURE_FROM, LURE_SUBJECT)
    (r,) = reported_in(parse(inline_report(BOB, LURE_FROM, LURE_SUBJECT)))
    assert (r.tracking_id, r.sender, r.subject) == ("", LURE_FROM, LURE_SUBJECT)
    (r,) = reported_in(parse(inline_report(BOB, "caiwu@subsidy.example", "关于发放工资补贴的通知", chinese=True)))
    assert (r.sender, r.subject) == ("caiwu@subsidy.example", "关于发放工资补贴的通知")
    gmail = EmailMessage()
    gmail["From"], gmail["To"], gmail["Subject"] = BOB, REPORT_BOX, "Fwd: Invoice"
    gmail.set_content("---------- Forwarded message ---------\nFrom: Billing <billing@invoices.example>\n"
                      "Date: Mon, Dec 1, 2026 at 9:00 AM\nSubject: Invoice 4411\nTo: <bob@victim-corp.com>\n")
    (r,) = reported_in(parse(gmail.as_bytes()))
    assert (r.sender, r.subject) == ("billing@invoices.example", "Invoice 4411")
    bare = EmailMessage()
    bare["From"], bare["To"], bare["Subject"] = BOB, REPORT_BOX, "FW: RE: 转发: Urgent wire"
    bare.set_content("see above")
    (r,) = reported_in(parse(bare.as_bytes()))
    assert bare_subject(r.subject) == "urgent wire" and not r.sender
    assert bare_subject("[EXTERNAL] Fwd:  Your   Account ") == "your account"
    assert bare_subject("FW: [SUSPICIOUS] 【外部邮件】 工资补贴") == "工资补贴"


def outlook_item(headers: str, subject: str) -> bytes:
    """An Outlook .msg item as Outlook attaches one: a compound file of MAPI property streams."""
    from tests.support.attachgen import ole_file

    return ole_file({
        "__substg1.0_007D001F": headers.encode("utf-16-le"),  # PR_TRANSPORT_MESSAGE_HEADERS
        "__substg1.0_0037001F": subject.encode("utf-16-le"),  # PR_SUBJECT
        "__substg1.0_0C1F001F": LURE_FROM.encode("utf-16-le"),  # PR_SENDER_EMAIL_ADDRESS
    })


def test_an_attached_outlook_item_is_read_for_the_copy_it_was() -> None:
    headers = (f"Received: from mx by gw\r\nX-Mailmoat-Id: 01ABC-0001\r\nFrom: HR Notice <{LURE_FROM}>\r\n"
               f"Subject: {LURE_SUBJECT}\r\nMessage-ID: <payroll-1@payroll-portal.example>\r\n\r\n")
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = BOB, REPORT_BOX, f"FW: {LURE_SUBJECT}"
    m.set_content("Reported with the Outlook button.")
    m.add_attachment(outlook_item(headers, LURE_SUBJECT), maintype="application", subtype="vnd.ms-outlook", filename="suspect.msg")
    (r,) = reported_in(parse(m.as_bytes()))
    assert (r.tracking_id, r.message_id, r.sender, r.subject) == ("01ABC-0001", "<payroll-1@payroll-portal.example>", LURE_FROM,
                                                                  LURE_SUBJECT)
    # Without its internet headers (an item saved before it was sent): its properties.
    bare = EmailMessage()
    bare["From"], bare["To"], bare["Subject"] = BOB, REPORT_BOX, "FW: see attached"
    bare.set_content("see attached")
    from tests.support.attachgen import ole_file

    item = ole_file({"__substg1.0_0037001F": LURE_SUBJECT.encode("utf-16-le"), "__substg1.0_0C1F001F": LURE_FROM.encode("utf-16-le")})
    bare.add_attachment(item, maintype="application", subtype="octet-stream", filename="Suspect.MSG")
    (r,) = reported_in(parse(bare.as_bytes()))
    assert (r.tracking_id, r.sender, r.subject) == ("", LURE_FROM, LURE_SUBJECT)
    # Something that only says it is one: the report's own subject, as with no attachment.
    fake = EmailMessage()
    fake["From"], fake["To"], fake["Subject"] = BOB, REPORT_BOX, "FW: Invoice"
    fake.set_content("see attached")
    fake.add_attachment(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600, maintype="application", subtype="vnd.ms-outlook",
                        filename="x.msg")
    (r,) = reported_in(parse(fake.as_bytes()))
    assert bare_subject(r.subject) == "invoice"


def test_reports_are_linked_listed_condemned_and_dismissed(settings: Settings) -> None:
    settings = report_settings(settings)
    store = Store(settings.db_url)
    try:
        the_lure_and_its_reports(settings, store, [
            (ALICE, lambda: attached_report(ALICE, alices_copy(settings))),
            # As Bob's client shows it: tagged by the gateway.
            (BOB, lambda: inline_report(BOB, LURE_FROM, f"[SUSPICIOUS] {LURE_SUBJECT}")),
            # Carol never had it: a copy of Alice's, passed on to her, names no mail of hers.
            (CAROL, lambda: attached_report(CAROL, alices_copy(settings))),
        ])
        mail_id = lure_id(store)
        with store.session() as s:
            items = reported(s)
        assert len(items) == 2
        found = next(i for i in items if i["mail_id"])
        assert (found["mail_id"], found["reporters"], found["matched_by"]) == (mail_id, [ALICE, BOB], ["sender_subject", "tracking_id"])
        assert found["state"] == "open" and found["message"]["subject"] == LURE_SUBJECT
        unmatched = next(i for i in items if not i["mail_id"])
        assert (unmatched["reporters"], bare_subject(unmatched["subject"]), unmatched["sender"]) == ([CAROL], bare_subject(LURE_SUBJECT), LURE_FROM)
        assert unmatched["matched_by"] == ["none"]
        st = gather(settings, store)
        assert st.reports_open == 2 and "reports_open" in [a["kind"] for a in st.attention]
        # The reports themselves reached the report mailbox.
        assert len([t for t in maildir_copies(settings.mail_dir, REPORT_BOX) if t]) == 3

        code, out = cli(settings, "reports", "list", "--format", "json")
        assert code == 0 and {tuple(i["reporters"]) for i in json.loads(out)["items"]} == {(ALICE, BOB), (CAROL,)}
        code, out = cli(settings, "reports", "dismiss", unmatched["key"], "--reason", "carol was not sent it")
        assert code == 0 and "dismissed 1 report(s)" in out
        assert cli(settings, "reports", "dismiss", unmatched["key"])[0] == 1

        app = create_app(settings, store)
        analyst, auditor = api_token(store, "analyst"), api_token(store, "auditor")
        with TestClient(app, base_url="http://testserver") as client:
            (item,) = client.get("/api/v1/reports", headers=auditor).json()["items"]
            assert item["mail_id"] == mail_id
            detail = client.get(f"/api/v1/messages/{mail_id}", headers=auditor).json()
            assert sorted(r["reporter"] for r in detail["reports"]) == [ALICE, BOB]
            assert client.post(f"/api/v1/reports/{mail_id}/dismiss", headers=auditor, json={}).status_code == 403
            # Condemned: every copy is recalled (recall.auto "automatic"), and the report is answered.
            r = client.post(f"/api/v1/messages/{mail_id}/condemn", headers=analyst, json={"reason": "reported twice"})
            assert r.status_code == 200, r.text
            wait_for(lambda: not in_inbox(settings, ALICE) and not in_inbox(settings, BOB), what="the reported message recalled")
            assert client.get("/api/v1/reports", headers=auditor).json()["items"] == []
            everything = client.get("/api/v1/reports?all=true", headers=auditor).json()["items"]
            assert sorted(i["state"] for i in everything) == ["condemned", "dismissed"]
            assert client.post(f"/api/v1/reports/{mail_id}/dismiss", headers=analyst, json={}).status_code == 200
            assert client.post(f"/api/v1/reports/{mail_id}/dismiss", headers=analyst, json={}).status_code == 404
        assert gather(settings, store).reports_open == 0
        assert len([t for t in maildir_copies(settings.mail_dir, REPORT_BOX) if t]) == 3  # the reports stay

        # Each reporter gets a receipt for each report, and is told what became of it, each once.
        assert asyncio.run(send_feedback(settings, store)) == []  # reports.acknowledge and .feedback are off
        settings.reports.acknowledge = True
        sent = asyncio.run(send_feedback(settings, store))
        assert sorted((x["reporter"], x["outcome"], x["sent"]) for x in sent) == [
            (ALICE, "received", True), (BOB, "received", True), (CAROL, "received", True)]
        (receipt,) = notices(settings, BOB)
        assert "reached the security team" in receipt.get_content() and LURE_FROM in receipt.get_content()
        settings.reports.feedback = True
        sent = asyncio.run(send_feedback(settings, store))
        assert sorted((x["reporter"], x["outcome"], x["sent"]) for x in sent) == [
            (ALICE, "threat", True), (BOB, "threat", True), (CAROL, "safe", True)]
        assert asyncio.run(send_feedback(settings, store)) == []
        alice = [m for m in notices(settings, ALICE) if "confirmed" in m.get_content()]
        assert [m["Subject"] for m in alice] == [f"Your report: {LURE_SUBJECT}"]
        assert "confirmed as a threat and removed" in alice[0].get_content() and LURE_FROM in alice[0].get_content()
        assert any("judged not to be a threat" in m.get_content() for m in notices(settings, CAROL))
        # It was no threat after all: the recall restored whole, the reporters are told again.
        from mailmoat.recall.engine import RecallEngine
        from mailmoat.store.recall_models import RecallJobRow

        with store.session() as s:
            job = s.scalars(select(RecallJobRow.id).where(RecallJobRow.trigger == "auto:verdict")).one()
        engine = RecallEngine(settings, store)
        try:
            assert asyncio.run(engine.restore(job, "analyst"))["state"] == "restored"
        finally:
            asyncio.run(engine.close())
        assert in_inbox(settings, ALICE) and in_inbox(settings, BOB)
        sent = asyncio.run(send_feedback(settings, store))
        assert sorted((x["reporter"], x["outcome"], x["sent"]) for x in sent) == [(ALICE, "safe", True), (BOB, "safe", True)]
        assert any("judged not to be a threat" in m.get_content() for m in notices(settings, ALICE))
        assert asyncio.run(send_feedback(settings, store)) == []
    finally:
        store.close()


@pytest.mark.parametrize("needed", [2, 3])
def test_enough_reports_condemn_a_message_by_themselves(settings: Settings, needed: int) -> None:
    settings = report_settings(settings)
    settings.policy.report_condemn_after = needed
    store = Store(settings.db_url)
    try:
        the_lure_and_its_reports(settings, store, [
            (ALICE, lambda: attached_report(ALICE, alices_copy(settings))),
            (ALICE, lambda: inline_report(ALICE, LURE_FROM, LURE_SUBJECT)),  # the same colleague again
            (BOB, lambda: inline_report(BOB, LURE_FROM, LURE_SUBJECT, chinese=True)),
        ], then=(lambda: not in_inbox(settings, ALICE) and not in_inbox(settings, BOB),
                 "the copies recalled after two colleagues reported") if needed == 2 else None)
        with store.session() as s:
            status = s.get(MessageRow, lure_id(store)).status  # type: ignore[union-attr]
            (item,) = reported(s, everything=True)
        if needed == 2:
            assert status == "condemned" and item["state"] in ("condemned", "recalled")
            # A later report's condemnation, come too late, condemns nothing twice.
            asyncio.run(condemn_reported(store, settings, [(lure_id(store), 3)]))
            with store.session() as s:
                assert len(s.scalars(select(AuditRow).where(AuditRow.action == "message.condemn")).all()) == 1
        else:  # two colleagues, one of them twice: not yet three
            assert status != "condemned" and item["state"] == "open" and item["reports"] == 3
            assert in_inbox(settings, ALICE) and in_inbox(settings, BOB)
    finally:
        store.close()


def test_condemning_after_reports_does_not_hold_up_the_mail_flow(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The condemnation a report sets off (a recall, the rest of its campaign judged again) runs
    beside the mail flow: while it waits, a gateway that processes one message at a time delivers
    other mail."""
    import threading

    from mailmoat import worker
    from mailmoat.recall import auto

    monkeypatch.setattr(worker.InProcessPool.__init__, "__defaults__", (1,))  # one message in flight

    settings = report_settings(settings)
    settings.policy.report_condemn_after = 1
    gate, real = threading.Event(), auto.condemn_message

    async def held_back(*args: Any, **kwargs: Any) -> Any:
        while not gate.is_set():
            await asyncio.sleep(0.05)
        return await real(*args, **kwargs)

    monkeypatch.setattr(auto, "condemn_message", held_back)
    store = Store(settings.db_url)
    try:
        with inprocess_gateway(settings) as gw:
            with smtplib.SMTP(gw.host, gw.port, timeout=30) as c:
                c.sendmail(LURE_FROM, [ALICE, BOB], lure())
            wait_for(lambda: in_inbox(settings, ALICE) and in_inbox(settings, BOB), what="the lure")
            with smtplib.SMTP("127.0.0.1", gw.internal_port, timeout=30) as c:
                c.sendmail(ALICE, [REPORT_BOX], inline_report(ALICE, LURE_FROM, LURE_SUBJECT))
            wait_for(lambda: report_rows(store) == 1, what="the report linked")
            with smtplib.SMTP(gw.host, gw.port, timeout=30) as c:
                c.sendmail("facilities@partner.example", [CAROL], b"From: facilities@partner.example\r\nTo: " + CAROL.encode()
                           + b"\r\nSubject: Lift maintenance\r\n\r\nThe lifts are out of service on Saturday.\r\n")
            wait_for(lambda: in_inbox(settings, CAROL), what="other mail delivered while the condemnation waits")
            assert in_inbox(settings, ALICE) and in_inbox(settings, BOB)
            gate.set()
            wait_for(lambda: not in_inbox(settings, ALICE) and not in_inbox(settings, BOB), what="the lure recalled")
    finally:
        gate.set()
        store.close()


def test_a_notice_names_the_message_in_words_that_cannot_pose_as_links() -> None:
    from mailmoat.reports.feedback import compose

    settings = Settings()
    settings.reports.language = "zh"
    raw = compose(settings, ALICE, "threat", "工资补贴 https://pay.evil.example/claim\x1b]0;x\x07", "caiwu@evil.example", time.time())
    msg = email.message_from_bytes(raw, policy=policy.default)
    text = msg.get_content()  # type: ignore[attr-defined]
    assert msg["Subject"].startswith("您的举报：工资补贴") and "已被确认为威胁邮件" in text
    assert "https[:]//" in text and "https://" not in text and "\x1b" not in text and "caiwu@evil.example" in text


def test_the_gateway_sends_the_notices_by_itself(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    import mailmoat.reports.feedback

    settings = report_settings(settings)
    settings.reports.feedback = True
    monkeypatch.setattr(mailmoat.reports.feedback, "FIRST_CHECK_AFTER", 0.1)
    store = Store(settings.db_url)
    try:
        with store.session() as s:  # a report the security team dismissed
            s.add(ReportRow(report_id="r1", reporter=ALICE, message_id="", matched_by="none", subject="Lunch menu",
                            sender="chef@canteen.example", reported_at=time.time(), dismissed_at=time.time(), dismissed_by="analyst"))
        with inprocess_gateway(settings):
            (notice,) = wait_for(lambda: notices(settings, ALICE), what="the notice")
        assert "Lunch menu" in notice["Subject"] and "judged not to be a threat" in notice.get_content()
    finally:
        store.close()


def test_a_header_block_amid_crafted_lines_is_still_read() -> None:
    # Lines are read 1,000 characters at a time (bench/report_intake.py times such reports: the
    # address pattern over a whole 60,000-letter line took 5.8 s).
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = BOB, REPORT_BOX, "FW: x"
    m.set_content("From: " + "a" * 60_000 + "\nSubject: Payroll\n" + "From: x\n" * 10_000)
    (r,) = reported_in(parse(m.as_bytes()))
    assert (r.subject, r.sender) == ("Payroll", "")
