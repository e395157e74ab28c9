"""Raw QR phishing messages: the three stages of the subsidy-fraud wave and the other carriers."""

from __future__ import annotations

import base64
import email
import email.policy
from email.message import EmailMessage
from email.utils import make_msgid

from tests.support import qrgen as g

SUBSIDY_URL = "https://gov-subsidy-claim.top/apply?token=8f3a2c"
SUBJECT = "关于发放2025年第二季度个人劳动补贴的通知"
BODY_TEXT = "各位同事：根据最新政策，请于三日内扫描下方二维码完成个人补贴申领，逾期视为自动放弃。"


def _base(from_: str, subject: str = SUBJECT) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = from_
    msg["To"] = "zhang.wei@victim-corp.com"
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="sender.example")
    msg["Date"] = "Tue, 10 Jun 2025 09:12:00 +0800"
    return msg


def stage1_inline(url: str = SUBSIDY_URL) -> bytes:
    """Stage 1: an outside sender, the QR code as a plain inline image shown by the HTML."""
    msg = _base("人力资源和社会保障局 <notice@hrss-gov-cn.top>")
    msg.set_content(BODY_TEXT)
    msg.add_alternative(f"<html><body><p>{BODY_TEXT}</p><img src='cid:qr1@hrss'></body></html>", subtype="html")
    html_part = msg.get_payload()[1]
    html_part.add_related(g.png_bytes(g.qr_image(url, 5)), maintype="image", subtype="png", cid="<qr1@hrss>", filename="qr.png", disposition="inline")
    return msg.as_bytes()


def stage2_spoofed_department(url: str = SUBSIDY_URL) -> bytes:
    """Stage 2: the same, from a spoofed internal department."""
    msg = _base("财务部 <finance@victim-corp.com>")
    msg.set_content(BODY_TEXT)
    msg.add_alternative(f"<html><body><p>{BODY_TEXT}</p><img src='cid:qr2@finance'></body></html>", subtype="html")
    html_part = msg.get_payload()[1]
    html_part.add_related(g.png_bytes(g.qr_image(url, 5)), maintype="image", subtype="png", cid="<qr2@finance>")
    return msg.as_bytes()


def stage3_cid_attachment(url: str = SUBSIDY_URL) -> bytes:
    """Stage 3: the QR in a part marked as attachment, declared application/octet-stream, shown by cid."""
    msg = _base("财务部 <finance@victim-corp.com>")
    msg.set_content(BODY_TEXT)
    msg.add_alternative(
        f"<html><body><p>{BODY_TEXT}</p><p><img src=\"cid:part1.9F2B@victim-corp.com\" width=\"220\"></p><p>财务部</p></body></html>",
        subtype="html",
    )
    msg.add_attachment(
        g.png_bytes(g.qr_image(url, 5)),
        maintype="application",
        subtype="octet-stream",
        filename="补贴申领.dat",
        cid="<part1.9F2B@victim-corp.com>",
    )
    return msg.as_bytes()


def with_attachment(data: bytes, filename: str, maintype: str, subtype: str, url_text: str = "") -> bytes:
    msg = _base("财务部 <finance@victim-corp.com>")
    msg.set_content(BODY_TEXT + url_text)
    msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes()


def html_only(html: str, from_: str = "财务部 <finance@victim-corp.com>") -> bytes:
    msg = _base(from_)
    msg.set_content(html, subtype="html")
    return msg.as_bytes()


def text_only(text: str) -> bytes:
    msg = _base("IT Helpdesk <it@helpdesk-support.top>", "Mailbox verification required")
    msg.set_content(text)
    return msg.as_bytes()


def tiled_html(url: str = SUBSIDY_URL, layout: str = "2x2") -> bytes:
    """The code split into tiles, each its own cid part, laid out flush by an HTML table."""
    tiles = g.tiles(g.qr_image(url, 5), layout)
    msg = _base("财务部 <finance@victim-corp.com>")
    msg.set_content(BODY_TEXT)
    cids = [f"tile{i}@victim-corp.com" for i in range(len(tiles))]
    if layout == "2x2":
        cells = f"<tr><td><img src='cid:{cids[0]}'></td><td><img src='cid:{cids[1]}'></td></tr>"
        cells += f"<tr><td><img src='cid:{cids[2]}'></td><td><img src='cid:{cids[3]}'></td></tr>"
    else:
        cells = "<tr>" + "".join(f"<td><img src='cid:{c}'></td>" for c in cids) + "</tr>"
    msg.add_alternative(f"<html><body><p>{BODY_TEXT}</p><table cellspacing=0 cellpadding=0>{cells}</table></body></html>", subtype="html")
    html_part = msg.get_payload()[1]
    # MIME order differs from the layout order on purpose.
    for i in reversed(range(len(tiles))):
        html_part.add_related(g.png_bytes(tiles[i]), maintype="image", subtype="png", cid=f"<{cids[i]}>")
    return msg.as_bytes()


def data_uri_html(url: str = SUBSIDY_URL, css: bool = False) -> bytes:
    b64 = base64.b64encode(g.png_bytes(g.qr_image(url, 4))).decode()
    if css:
        body = f"<div style=\"width:200px;height:200px;background-image:url('data:image/png;base64,{b64}')\"></div>"
    else:
        body = f"<img src=\"data:image/png;base64,{b64}\">"
    return html_only(f"<html><body><p>{BODY_TEXT}</p>{body}</body></html>")


def forwarded(inner: bytes) -> bytes:
    msg = _base("Zhang Wei <zhang.wei@partner.example>", "Fwd: " + SUBJECT)
    msg.set_content("See the attached notice.")
    msg.add_attachment(email.message_from_bytes(inner, policy=email.policy.default), filename="notice.eml")
    return msg.as_bytes()
