"""A simulated organisation for compromised-account tests: a normal week of internal mail, a takeover wave, a driver."""

from __future__ import annotations

import email
import random
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from mailmoat.accounts import Incident, observe
from mailmoat.accounts.profiles import learn_many
from mailmoat.config import Settings
from mailmoat.deliver import DeliveryService
from mailmoat.model import Direction, Envelope, Verdict
from mailmoat.parse import parse
from mailmoat.scanner import Scanner
from mailmoat.store.db import Store
from tests.support import qrgen as g
from tests.support.qrmail import BODY_TEXT, SUBJECT, SUBSIDY_URL

MAIL_HOST = "mail.corp.internal"  # the organisation's submission server (adds the trusted Received)
ATTACKER_IP = "203.0.113.66"
NAMES = ["Li Na", "Wang Fang", "Zhang Wei", "Liu Yang", "Chen Jing", "Yang Min", "Zhao Lei", "Huang Yan", "Zhou Jie",
         "Wu Tao", "Xu Li", "Sun Hao", "Ma Chao", "Zhu Hong", "Hu Bin", "Guo Qiang", "He Ping", "Lin Xia", "Gao Feng",
         "Luo Jun", "Zheng Hui", "Liang Yu", "Song Kai", "Xie Ning", "Tang Lan", "Han Bo", "Feng Rui", "Deng Chao",
         "Cao Mei", "Peng Fei"]  # fmt: skip
WORK_SUBJECTS = ["周报", "会议纪要", "Re: 项目进度", "Q3 budget draft", "Re: 客户反馈", "Lunch?", "合同审批", "Design review notes"]


@dataclass
class Org:
    domain: str
    colleagues: list[str]  # every mailbox (the 200 who may get the wave)
    senders: list[str]  # the ~30 accounts whose habits are replayed
    ips: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    peers: dict[str, list[str]] = field(default_factory=dict)


def make_org(colleagues: list[str], n_senders: int = 30, seed: int = 8) -> Org:
    rnd = random.Random(seed)
    domain = colleagues[0].rpartition("@")[2]
    senders = colleagues[:n_senders]
    org = Org(domain=domain, colleagues=colleagues, senders=senders)
    for i, a in enumerate(senders):
        org.ips[a] = f"10.1.{i // 200}.{10 + i % 200}"
        org.names[a] = NAMES[i % len(NAMES)]
        org.peers[a] = rnd.sample([c for c in colleagues if c != a], 8)
    return org


def received(ip: str, user: str, at: float) -> str:
    """The Received header the organisation's submission server adds for an authenticated client."""
    return (f"from workstation ([{ip}]) (Authenticated sender: {user}) by {MAIL_HOST} (Postfix) with ESMTPSA id 4Xk2;"
            f" {formatdate(at)}")


def work_mail(org: Org, sender: str, rcpts: list[str], at: float, subject: str, body: str, ip: str = "", name: str = "") -> bytes:
    msg = EmailMessage()
    msg["Received"] = received(ip or org.ips[sender], sender, at)
    msg["From"] = f"{name or org.names[sender]} <{sender}>"
    msg["To"] = ", ".join(rcpts[:3]) + (" ..." if len(rcpts) > 3 else "")
    msg["Subject"] = subject
    msg["Date"] = formatdate(at)
    msg["Message-ID"] = make_msgid(domain=org.domain)
    msg.set_content(body)
    return msg.as_bytes()


def normal_week(org: Org, end: float, seed: int = 1) -> list[tuple[Envelope, bytes]]:
    """Five working days before `end`: each account writes 3–9 mails a day to its usual peers, 09–18 (UTC+8)."""
    rnd = random.Random(seed)
    out: list[tuple[Envelope, bytes]] = []
    day0 = (end - 7 * 86400) // 86400 * 86400  # midnight UTC, so the hours are real office hours
    for day in range(7):
        if day in (5, 6):
            continue  # the weekend
        start = day0 + day * 86400
        for a in org.senders:
            for _ in range(rnd.randint(3, 9)):
                at = start + rnd.uniform(1, 10) * 3600  # 01–10 UTC = 09–18 in China
                rcpts = rnd.sample(org.peers[a], rnd.randint(1, 3))
                subject = rnd.choice(WORK_SUBJECTS)
                body = f"{subject}: 请查看附件和以下要点。第{rnd.randint(1, 99)}项已完成，下周继续跟进。"
                env = Envelope(mail_from=a, rcpt_tos=rcpts, received_at=at, direction=Direction.INTERNAL,
                               peer_ip="10.0.0.25", listener="internal")
                out.append((env, work_mail(org, a, rcpts, at, subject, body)))
    return out


def replay(store: Store, settings: Settings, mails: list[tuple[Envelope, bytes]]) -> int:
    """Learn profiles from past mail at its own timestamps (no waiting a week)."""
    with store.session() as s:
        return learn_many(s, settings, [(env, parse(raw)) for env, raw in mails])


def fraud_mail(org: Org, sender: str, rcpt: str, qr: bool = True) -> bytes:
    """The subsidy-fraud notice as "财务部", the QR code in a cid part marked as an attachment."""
    msg = EmailMessage()
    msg["Received"] = received(ATTACKER_IP, sender, time.time())
    msg["From"] = f"财务部 <{sender}>"
    msg["To"] = rcpt
    msg["Subject"] = SUBJECT if qr else "部门活动照片"
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain=org.domain)
    if qr:
        msg.set_content(BODY_TEXT)
        msg.add_alternative(
            f"<html><body><p>{BODY_TEXT}</p><p><img src=\"cid:part1.9F2B@{org.domain}\" width=\"220\"></p><p>财务部</p></body></html>",
            subtype="html",
        )
        msg.add_attachment(g.png_bytes(g.qr_image(SUBSIDY_URL, 5)), maintype="application", subtype="octet-stream",
                           filename="补贴申领.dat", cid=f"<part1.9F2B@{org.domain}>")
    else:
        # A lure the content engines do not know yet: only the account's behaviour gives it away.
        msg.set_content("各位同事：本季度部门活动的照片已经整理好了，大家可以在这里查看：\nhttps://share.cloudalbum.net/a/2025q2\n财务部")
    return msg.as_bytes()


@dataclass
class Sent:
    envelope: Envelope
    action: str
    incident: Incident | None
    symbols: list[str] = field(default_factory=list)


class Driver:
    """The pipeline's order for one message (scan → record → deliver → observe), with the accounts hook."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.scanner = Scanner(settings, store)
        self.delivery = DeliveryService(settings, store)

    async def send(self, env: Envelope, raw: bytes) -> Sent:
        result = await self.scanner.scan(raw, env)
        verdict: Verdict = result.verdict
        self.store.record_message(env, result.message, verdict, self.store.retain_raw(env, raw))
        await self.delivery.deliver(env, raw, verdict, result.message)
        incident = await observe(self.store, self.settings, env, result.message, verdict)
        return Sent(env, verdict.action.value, incident, [f.symbol for f in verdict.findings])

    def close(self) -> None:
        self.delivery.close()


def internal_env(sender: str, rcpts: list[str]) -> Envelope:
    return Envelope(mail_from=sender, rcpt_tos=rcpts, direction=Direction.INTERNAL, peer_ip="10.0.0.25", listener="internal")


def maildir_holders(mail_dir: Path, colleagues: list[str], tracking_prefixes: set[str], hidden: str = ".MailmoatRecall") -> list[str]:
    """Colleagues who can still see a copy (any visible folder) whose X-Mailmoat-Id starts with one of the prefixes."""
    out = []
    for c in colleagues:
        root = mail_dir / c.lower()
        if not root.is_dir():
            continue
        for f in root.rglob("*"):
            if not f.is_file() or f.parent.name not in ("new", "cur"):
                continue
            if any(part.startswith(hidden) for part in f.relative_to(root).parts):
                continue
            with open(f, "rb") as fh:
                tid = str(email.message_from_binary_file(fh).get("X-Mailmoat-Id", "")).strip()
            if tid.rpartition("-")[0] in tracking_prefixes:
                out.append(c)
                break
    return out
