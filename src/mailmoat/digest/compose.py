"""A digest as the recipient reads it: the plain and HTML parts, in English or Chinese."""

from __future__ import annotations

import html
from dataclasses import replace
from datetime import datetime
from email.utils import make_msgid

from mailmoat.config import Settings
from mailmoat.deliver.own_mail import own_message
from mailmoat.digest.listing import REQUEST, Digest, Item

_TEXT = {
    "en": {
        "subject": "Quarantine digest: {n} message(s) held for you",
        "intro": "These messages addressed to {rcpt} were held as likely spam and were not delivered (newest first).",
        "intro_some": "These messages addressed to {rcpt} were held as likely spam or fraud and were not delivered (newest first).",
        "links": "If one of them is legitimate, open its link to release it to your mailbox. The links work until {until}.",
        "nolinks": "If one of them is legitimate, ask your mail administrators to release it.",
        "requests": "A message marked \"Request release\" is one your administrators must look at first: its link asks them to release it.",
        "hidden": "Messages judged to be phishing or malware are never listed here; your administrators handle them.",
        "hidden_some": "Some held messages (malware, for example) are never listed here; your administrators handle them.",
        "date": "Date", "from": "From", "subject_col": "Subject", "release": "Release", "request": "Request release",
        "more": "... and {n} more; your administrators can see them all.",
    },
    "zh": {
        "subject": "隔离邮件摘要：{n} 封发给您的邮件被拦截",
        "intro": "以下发给 {rcpt} 的邮件被判定为疑似垃圾邮件，已被拦截，未投递（最新的在前）。",
        "intro_some": "以下发给 {rcpt} 的邮件被判定为疑似垃圾邮件或欺诈邮件，已被拦截，未投递（最新的在前）。",
        "links": "如果其中有正常邮件，请打开对应的链接，将其放行到您的邮箱。链接有效期至 {until}。",
        "nolinks": "如果其中有正常邮件，请联系邮件管理员放行。",
        "requests": "标为“申请放行”的邮件需要管理员先行审核：打开其链接即向管理员申请放行。",
        "hidden": "被判定为钓鱼或恶意软件的邮件不会列在这里，由管理员处理。",
        "hidden_some": "部分被拦截的邮件（例如含恶意软件的邮件）不会列在这里，由管理员处理。",
        "date": "时间", "from": "发件人", "subject_col": "主题", "release": "放行", "request": "申请放行",
        "more": "……还有 {n} 封；管理员可以看到全部。",
    },
}


def compose(settings: Settings, d: Digest) -> tuple[str, str, str]:
    """(subject, plain text, HTML) of the digest, in `digest.language`; everything from mail escaped."""
    t = _TEXT[settings.digest.language]
    until = datetime.fromtimestamp(d.links_until).strftime("%Y-%m-%d %H:%M") if d.links_until else ""
    has_links = any(i.link for i in d.items)
    some = bool(settings.digest.request_categories)
    intro = [t["intro_some" if some else "intro"].format(rcpt=d.recipient), t["links"].format(until=until) if has_links else t["nolinks"]]
    if has_links and any(i.link and i.way == REQUEST for i in d.items):
        intro.append(t["requests"])
    intro.append(t["hidden_some" if some else "hidden"])
    more = t["more"].format(n=d.total - len(d.items)) if d.total > len(d.items) else ""
    lines = [*intro, ""]
    for n, i in enumerate(d.items, 1):
        when = datetime.fromtimestamp(i.received_at).strftime("%Y-%m-%d %H:%M")
        lines += [f"{n}. {when}  {t['from']}: {i.sender}", f"   {t['subject_col']}: {i.subject}"]
        if i.link:
            lines.append(f"   {t[i.way]}: {i.link}")
        lines.append("")
    if more:
        lines.append(more)
    e = html.escape

    def row(i: Item) -> str:
        when = datetime.fromtimestamp(i.received_at).strftime("%Y-%m-%d %H:%M")
        link = f'<a href="{e(i.link)}">{e(t[i.way])}</a>' if i.link else ""
        return f"<tr><td>{e(when)}</td><td>{e(i.sender)}</td><td>{e(i.subject)}</td><td>{link}</td></tr>"

    page = (
        f'<!doctype html><html lang="{"zh-CN" if settings.digest.language == "zh" else "en"}"><head><meta charset="utf-8"></head><body>'
        + "".join(f"<p>{e(p)}</p>" for p in intro)
        + f'<table border="1" cellpadding="4" cellspacing="0"><tr><th>{e(t["date"])}</th><th>{e(t["from"])}</th>'
        f'<th>{e(t["subject_col"])}</th><th></th></tr>{"".join(row(i) for i in d.items)}</table>'
        + (f"<p>{e(more)}</p>" if more else "")
        + "</body></html>"
    )
    return t["subject"].format(n=d.total), "\n".join(lines), page


def render(settings: Settings, d: Digest, now: float, message_id: str = "") -> bytes:
    """The digest as a MIME message: the plain text, and the same as an HTML table."""
    subject, text, page = compose(settings, d)
    msg = own_message(settings, settings.digest.sender, d.recipient, subject, settings.digest.language, now, "digest")
    if message_id:
        msg.replace_header("Message-ID", message_id)
    msg.set_content(text)
    msg.add_alternative(page, subtype="html")
    return msg.as_bytes()


def render_to_keep(settings: Settings, d: Digest, now: float) -> tuple[bytes, bytes]:
    """(the digest to deliver, the same digest to record): in the recorded one each link reads
    `/digest/<token>`. A link releases mail to whoever holds it, and anyone who can read the record
    (an auditor in the console) must not; the store keeps only each token's hash."""
    message_id = make_msgid("digest", domain=settings.server.hostname)  # the same in both
    kept = replace(d, items=[replace(i, link=withheld(i.link)) for i in d.items])
    return render(settings, d, now, message_id), render(settings, kept, now, message_id)


def withheld(link: str) -> str:
    base, sep, _token = link.rpartition("/digest/")
    return f"{base}{sep}<token>" if sep else link
