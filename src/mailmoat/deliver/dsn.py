"""RFC 3464 delivery status notifications for copies that failed for good, and when not to send them.

Gateway practice (no backscatter): a DSN goes only to a real envelope sender (never to the
null sender or a mailer-daemon), never for mail the policy did not deliver as clean
(tagged, quarantined, rejected), and never when authentication says the sender is forged
(SPF fail/softfail, DMARC fail).
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass

from mailmoat.config import Settings
from mailmoat.deliver.headers import split_header
from mailmoat.model import Action, Envelope, Verdict

_FORGED = {"spf": {"fail", "softfail"}, "dmarc": {"fail"}}


@dataclass
class Failure:
    recipient: str
    status: str  # enhanced status code, e.g. "5.1.1" or "4.4.7" (expired)
    diagnostic: str  # the downstream reply or our reason
    remote_mta: str = ""


def dsn_allowed(envelope: Envelope, verdict: Verdict, settings: Settings) -> bool:
    """Whether a failure of this message may be reported to its envelope sender."""
    sender = envelope.mail_from.strip().strip("<>")
    if not settings.delivery.send_dsn or not sender or "@" not in sender:
        return False
    if sender.split("@", 1)[0].lower() in ("mailer-daemon", "postmaster-bounces"):
        return False
    if verdict.action != Action.DELIVER or verdict.score >= settings.policy.thresholds.tag:
        return False
    for f in verdict.findings:
        ar = f.data.get("authres") if isinstance(f.data, dict) else None
        if isinstance(ar, dict) and str(ar.get("result", "")).lower() in _FORGED.get(str(ar.get("method", "")).lower(), set()):
            return False
    return True


def build_dsn(
    *, reporting_mta: str, envelope: Envelope, raw: bytes, failures: list[Failure], now: float | None = None
) -> tuple[bytes, str, str]:
    """(DSN bytes with CRLF line endings, its subject, its Message-ID) reporting the failed recipients."""
    now = time.time() if now is None else now
    boundary = f"=_mailmoat_{envelope.id}_{int(now)}"
    msg_id = f"<dsn.{envelope.id}.{int(now * 1000)}@{reporting_mta}>"
    subject = "Undelivered Mail Returned to Sender"
    header, _ = split_header(raw)
    original = header.replace(b"\r\n", b"\n").rstrip(b"\n").replace(b"\n", b"\r\n")
    human = [
        f"This is the mail system at {reporting_mta}.",
        "",
        "Your message could not be delivered to one or more recipients.",
        "",
    ]
    for f in failures:
        human.append(f"<{f.recipient}>: {f.diagnostic}")
    per_message = [
        f"Reporting-MTA: dns; {reporting_mta}",
        f"X-Mailmoat-Queue-ID: {envelope.id}",
        f"Arrival-Date: {email.utils.formatdate(envelope.received_at, localtime=False)}",
    ]
    per_rcpt: list[str] = []
    for f in failures:
        per_rcpt += [
            "",
            f"Final-Recipient: rfc822; {f.recipient}",
            "Action: failed",
            f"Status: {f.status}",
        ]
        if f.remote_mta:
            per_rcpt.append(f"Remote-MTA: dns; {f.remote_mta}")
        diag = f.diagnostic.replace("\r", " ").replace("\n", " ")
        per_rcpt.append(f"Diagnostic-Code: smtp; {diag}")
    lines = [
        f"From: Mail Delivery System <MAILER-DAEMON@{reporting_mta}>",
        f"To: <{envelope.mail_from.strip().strip('<>')}>",
        f"Subject: {subject}",
        f"Date: {email.utils.formatdate(now, localtime=False)}",
        f"Message-ID: {msg_id}",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
        "",
        "This is a MIME-encapsulated message.",
        "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
        "",
        *human,
        "",
        f"--{boundary}",
        "Content-Type: message/delivery-status",
        "",
        *per_message,
        *per_rcpt,
        "",
        f"--{boundary}",
        "Content-Type: text/rfc822-headers",
        "",
    ]
    body = "\r\n".join(lines).encode("utf-8") + b"\r\n" + original + b"\r\n" + f"\r\n--{boundary}--\r\n".encode()
    return body, subject, msg_id
