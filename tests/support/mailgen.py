"""Small synthetic ham and spam (English and Chinese), written here, for classifier and train tests."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

from mailmoat.model import Address, Message

HAM_EN = ["meeting", "agenda", "project", "review", "lunch", "thanks", "schedule", "report", "team", "notes", "draft", "quarterly", "budget", "tomorrow", "minutes", "colleague", "deadline", "slides", "feedback", "lecture", "seminar", "paper", "experiment", "results", "kernel", "patch", "build", "release", "compile", "library", "function", "bug", "fix", "test", "branch", "merge"]
SPAM_EN = ["winner", "prize", "free", "offer", "click", "verify", "account", "password", "suspended", "cheap", "discount", "guaranteed", "limited", "exclusive", "bonus", "claim", "reward", "urgent", "lottery", "million", "investment", "unsubscribe", "pills", "mortgage", "credit", "refund", "deal", "act", "now"]
HAM_ZH = list("会议项目进度报告周五讨论安排谢谢附件同事论文实验结果老师同学课程作业代码测试版本")
SPAM_ZH = list("发票代开优惠中奖免费扫码领取补贴特价促销理财贷款广告低价限时回馈抽奖")
SHARED_EN = ["the", "a", "to", "of", "and", "you", "your", "we", "for", "with", "this", "that", "please"]
SHARED_ZH = list("的了是在我们你请和")


def _text(rng: random.Random, vocab: list[str], shared: list[str], n: int, sep: str) -> str:
    words = [rng.choice(vocab) for _ in range(n)] + [rng.choice(shared) for _ in range(n // 3)]
    rng.shuffle(words)
    return sep.join(words)


def synthetic(rng: random.Random, spam: bool, chinese: bool) -> tuple[str, str]:
    """(subject, body) for one synthetic message of the given class and language."""
    if chinese:
        vocab, shared, sep = (SPAM_ZH if spam else HAM_ZH), SHARED_ZH, ""
        # Chinese text is made of two-character words so bigrams carry the signal.
        pairs = [vocab[i] + vocab[(i + 1) % len(vocab)] for i in range(0, len(vocab), 2)]
        return _text(rng, pairs, shared, 4, sep), _text(rng, pairs, shared, 30, sep)
    vocab, shared = (SPAM_EN if spam else HAM_EN), SHARED_EN
    return _text(rng, vocab, shared, 4, " "), _text(rng, vocab, shared, 40, " ")


def synthetic_message(rng: random.Random, spam: bool, chinese: bool) -> Message:
    subject, body = synthetic(rng, spam, chinese)
    return Message(subject=subject, text=body, from_=Address("Sender", "sender@example.org"))


def synthetic_eml(
    rng: random.Random, spam: bool, chinese: bool, when: datetime | None = None, mailer: str = "Mutt/1.2"
) -> bytes:
    """A raw RFC 5322 message with era-revealing headers (Date, Received, X-Mailer)."""
    when = when or datetime(2002, 9, 1, 12, 0, tzinfo=UTC)
    subject, body = synthetic(rng, spam, chinese)
    m = EmailMessage()
    m["Received"] = f"from relay.old-isp.example (relay [192.0.2.7]) by mx.example.org; {format_datetime(when)}"
    m["From"] = "Sender <sender@example.org>"
    m["To"] = "user@example.com"
    m["Subject"] = subject
    m["Date"] = format_datetime(when)
    m["Message-ID"] = f"<{rng.randrange(10**9)}.{when.year}@old-isp.example>"
    m["X-Mailer"] = mailer
    m.set_content(body)
    return m.as_bytes()
