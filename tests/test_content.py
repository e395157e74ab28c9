"""Content heuristics: each sign fires on a message written to show it, ordinary mail stays quiet, the group is capped."""

from __future__ import annotations

import base64

from mailmoat.analyzers.base import AnalysisContext, AnalyzerEnv
from mailmoat.analyzers.content import ContentAnalyzer
from mailmoat.config import Settings
from mailmoat.model import Action, Envelope, Finding, Message, Part
from mailmoat.parse import parse
from mailmoat.policy import Policy


def _raw(
    subject: str, body: str, *, frm: str = "Alice <alice@example.org>", extra: str = "", html: bool = False
) -> bytes:
    ctype = "text/html" if html else "text/plain"
    head = (
        f"From: {frm}\r\nTo: bob@example.net\r\nSubject: {subject}\r\nDate: Mon, 2 Nov 2026 09:00:00 +0000\r\n"
        f"Message-ID: <1@example.org>\r\nMIME-Version: 1.0\r\n{extra}"
        f"Content-Type: {ctype}; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    )
    return head.encode() + body.encode("utf-8") + b"\r\n"


async def run(settings: Settings, m: Message) -> dict[str, Finding]:
    a = ContentAnalyzer(AnalyzerEnv(settings=settings))
    ctx = AnalysisContext(
        message=m, envelope=Envelope(mail_from="", rcpt_tos=["bob@example.net"]), settings=settings
    )
    return {f.symbol: f for f in await a.analyze(ctx)}


ORDINARY = (
    "Hi Bob,\r\n\r\nthanks for the notes from Tuesday. I moved the review to Thursday afternoon and added "
    "Carol, who wrote the migration plan. Could you bring the latest figures? See the draft at "
    "https://wiki.example.org/plans/q3 before then.\r\n\r\nAlice\r\n"
)


async def test_ordinary_mail_is_quiet(settings: Settings) -> None:
    assert await run(settings, parse(_raw("Review moved to Thursday", ORDINARY))) == {}


async def test_ordinary_chinese_mail_is_quiet(settings: Settings) -> None:
    body = "各位好，\r\n\r\n周四下午的评审改到三楼会议室，请带上上周的测试结果。\r\n\r\n谢谢\r\n"
    assert await run(settings, parse(_raw("评审会议改到周四", body, frm="张伟 <zhang@example.cn>"))) == {}


async def test_hidden_text_inside_words(settings: Settings) -> None:
    """Salad hidden inside words ("de<span>Eliette</span>vice") fires; a hidden preview line, a
    column hidden on phones and a hidden dash between digits do not: templates hide whole blocks."""
    body = (
        "<p>Scan your de<span style='font-size:0.00000001vw'>Eliette</span>vice on"
        "<span style='display:none'>Fouquet</span>line to keep your fun<font style='font-size:0'>Reuters</font>ds safe</p>"
    )
    found = await run(settings, parse(_raw("Security notice", body, html=True)))
    assert found["CONTENT_HIDDEN_IN_WORDS"].data["count"] == 3
    template = (
        "<div style='display:none;max-height:0;overflow:hidden'>Your October statement is ready</div>"
        "<table><tr><td style='font-size:0'> <div style='font-size:14px'>Hi Bob, your statement is ready.</div></td>"
        "<td class='desktop' style='display:none'>Wide column</td></tr></table>"
        "<p>Call 555<span style='display:none'>-</span>0100 or reply to this message.</p>"
    )
    assert "CONTENT_HIDDEN_IN_WORDS" not in await run(settings, parse(_raw("Your statement", template, html=True)))


async def test_subject_signs(settings: Settings) -> None:
    found = await run(settings, parse(_raw("FREE MONEY WAITING FOR YOU!", ORDINARY)))
    assert {"CONTENT_SUBJECT_CAPS", "CONTENT_SUBJECT_EXCLAIM"} <= set(found)
    found = await run(settings, parse(_raw("Save 80% on your order", ORDINARY)))
    assert "CONTENT_SUBJECT_MONEY" in found and "'80%'" in found["CONTENT_SUBJECT_MONEY"].evidence
    found = await run(settings, parse(_raw("Lose weight fast                      kqzv", ORDINARY)))
    assert "CONTENT_SUBJECT_GAP" in found and "kqzv" in found["CONTENT_SUBJECT_GAP"].evidence
    # A Chinese full-width exclamation mark counts too.
    assert "CONTENT_SUBJECT_EXCLAIM" in await run(settings, parse(_raw("限时优惠！", ORDINARY)))


async def test_display_name_and_zero_width(settings: Settings) -> None:
    found = await run(settings, parse(_raw("Hello", ORDINARY, frm='"Win $$$ Now" <promo@example.com>')))
    assert "CONTENT_DISPLAY_NAME_PUNCT" in found
    body = "Please ver\u200bify your acc\u200bount at https://login.example.com/\r\n"
    found = await run(settings, parse(_raw("Account notice", body)))
    assert found["CONTENT_ZERO_WIDTH"].data["count"] == 2
    # In the sender's name too: "donotreply" with a combining grapheme joiner after every letter.
    hidden = "\u034f".join("donotreply")
    frm = f"=?UTF-8?B?{base64.b64encode(hidden.encode()).decode()}?= <notice@parcel-desk.example>"
    found = await run(settings, parse(_raw("Delivery attempt failed", ORDINARY, frm=frm)))
    assert found["CONTENT_ZERO_WIDTH"].data["count"] == 9
    assert "CONTENT_ZERO_WIDTH" not in await run(settings, parse(_raw("Hello", ORDINARY, frm="Li Ming <li@vendor.example>")))


async def test_a_display_name_that_is_an_advertisement(settings: Settings) -> None:
    for frm in ("Walmart - You Are Our December Winner <w@promo.example>", "Bitget Airdrop <a@drop.example>",
                "=?UTF-8?B?5Lit5aWW6YCa55+l?= <x@lucky.example>", "Claim Your Jackpot <j@spins.example>"):
        found = await run(settings, parse(_raw("Hello", ORDINARY, frm=frm)))
        assert "CONTENT_DISPLAY_NAME_LURE" in found, frm
    # Real senders' names: loyalty programmes, a national lottery, a shop called Winners, a claims desk.
    for frm in ("Starbucks Rewards <r@starbucks.example>", "The National Lottery <n@lottery.example>",
                "Winners <info@winners.example>", "Allstate Claims <c@allstate.example>", "Sexton Li <s@law.example>"):
        assert "CONTENT_DISPLAY_NAME_LURE" not in await run(settings, parse(_raw("Hello", ORDINARY, frm=frm))), frm


async def test_body_signs(settings: Settings) -> None:
    shouting = " ".join(["THIS OFFER IS REAL AND YOU MUST ACT NOW"] * 5 + ["please read it"] * 5)
    assert "CONTENT_BODY_CAPS" in await run(settings, parse(_raw("Offer", shouting)))
    body = (
        "Earn $500 a day, $3,000 a week, up to $12000 a month. Click here to start: https://go.example.com/a\r\n"
        "More at https://go.example.com/b and https://www.go.example.com/c\r\n"
        "To unsubscribe reply with REMOVE.\r\n"
    )
    found = await run(settings, parse(_raw("Opportunity", body)))
    assert {
        "CONTENT_MONEY_TALK",
        "CONTENT_CLICK_HERE",
        "CONTENT_BULK_NO_LIST",
        "CONTENT_LINKS_ONE_DOMAIN",
    } <= set(found)
    assert found["CONTENT_LINKS_ONE_DOMAIN"].data["domain"] == "example.com"


async def test_links_to_the_senders_own_domain_and_real_lists_are_not_signs(settings: Settings) -> None:
    body = (
        "Our release notes: https://www.example.org/a https://docs.example.org/b https://example.org/c\r\n"
        "To unsubscribe from this list visit https://lists.example.org/\r\n"
    )
    extra = "List-Id: <dev.lists.example.org>\r\nList-Unsubscribe: <https://lists.example.org/u>\r\n"
    found = await run(settings, parse(_raw("Release notes", body, frm="Dev <dev@example.org>", extra=extra)))
    assert "CONTENT_LINKS_ONE_DOMAIN" not in found
    assert "CONTENT_BULK_NO_LIST" not in found


async def test_undecodable_and_garbled_text(settings: Settings) -> None:
    m = Message(
        subject="x",
        text="\ue000\x01\ufffd" * 30 + " some words",
        defects=["charset:undecodable gb2312 part=1"],
    )
    found = await run(settings, m)
    assert {"CONTENT_UNDECODABLE", "CONTENT_GARBLED"} <= set(found)
    assert "gb2312" in found["CONTENT_UNDECODABLE"].evidence


async def test_empty_and_hostile_input_is_safe(settings: Settings) -> None:
    assert await run(settings, Message()) == {}
    huge = Message(subject="!" * 100_000, text="A" * 5_000_000, html_text="\u200b" * 100_000)
    found = await run(settings, huge)
    assert "CONTENT_SUBJECT_EXCLAIM" in found


async def test_the_group_is_capped_below_the_tag_threshold(settings: Settings) -> None:
    body = (
        "EARN $500 A DAY, $3,000 A WEEK, $12000 A MONTH!!! CLICK HERE NOW: https://go.example.com/a "
        "https://go.example.com/b https://go.example.com/c TO UNSUBSCRIBE REPLY REMOVE. "
        "THIS IS NOT SPAM, YOU SIGNED UP FOR THIS OFFER AT OUR SITE, ACT TODAY AND GET RICH FAST ok ok ok"
    )
    m = parse(_raw("MAKE $$$ FAST!!!       zq1", body, frm='"Rich $ Club!" <a@example.org>'))
    found = await run(settings, m)
    assert sum(f.score for f in found.values()) > settings.policy.thresholds.tag
    symbols = {s.name: s for s in ContentAnalyzer.symbols}
    verdict = Policy(settings.policy, symbols).decide(
        list(found.values()), Envelope(mail_from="a@example.org", rcpt_tos=["b@x"]), m
    )
    assert verdict.action == Action.DELIVER
    assert verdict.score <= settings.policy.group_caps["content"] + 1e-9


async def test_preview_text_padding_is_not_zero_width_evasion(settings: Settings) -> None:
    # Newsletters pad their preview text with zero-width joiners between spaces: not a trick.
    body = "Our autumn programme \u200c \u200c \u200c \u200c is out. Read it at https://www.example.org/autumn\r\n"
    assert "CONTENT_ZERO_WIDTH" not in await run(settings, parse(_raw("Autumn programme", body)))


def test_fast_counts_equal_the_patterns_they_replace() -> None:
    import random

    from mailmoat.analyzers.content import _CAPS_WORD, _GARBAGE, _count_caps_words, _count_garbage

    rng = random.Random(7)
    pieces = ["HELLO", "World", "FOO_BAR", "A1B2", "I", "OK", "ok", "x", "\x01", "\x0b", "\t", "\n", " ", ",", "_",
              "9", "URGENT!", "ÄBC", "\ufffd", "\ue000", "ABC\u00e9", "NOW-NOW", "a.B.C"]
    for _ in range(20_000):
        text = "".join(rng.choice(pieces) + rng.choice(["", " "]) for _ in range(rng.randint(0, 40)))
        assert _count_caps_words(text) == len(_CAPS_WORD.findall(text)), text
        assert _count_garbage(text) == len(_GARBAGE.findall(text)), text


async def test_invisible_selectors_and_marked_letters(settings: Settings) -> None:
    # Variation selectors (drawn as nothing) between the letters of a subject's words.
    sel = "\U000e0139\U000e0139"
    subject = f"Please re-verify your b{sel}a{sel}n{sel}k c{sel}a{sel}r{sel}d"
    found = await run(settings, Message(subject=subject, text="See the link below."))
    assert found["CONTENT_ZERO_WIDTH"].data["count"] == 6
    # After a Han character a selector picks a glyph variant (a Japanese name): not a trick; nor
    # is the emoji selector after a heart.
    assert await run(settings, Message(subject="葛\U000e0100飾区のお知らせ", text="よろしくお願いします ❤\ufe0f")) == {}
    # Every letter struck through: the reader sees "Pending Package", a filter sees no word.
    marked = "".join(c + "\u0336" for c in "Pending Package")
    found = await run(settings, Message(subject=marked, text="Your parcel is waiting."))
    assert found["CONTENT_MARKED_LETTERS"].data["count"] == 2
    assert "'Pending'" in found["CONTENT_MARKED_LETTERS"].evidence
    # A short struck-through price and ordinary accents are not.
    price = "W\u0336a\u0336s\u0336 $50, now $30. Cafe\u0301 au lait."
    assert "CONTENT_MARKED_LETTERS" not in await run(settings, Message(subject="Sale", text=price))


def test_the_lexicon_and_the_classifier_read_through_hidden_characters() -> None:
    from mailmoat.analyzers.lexicon import load_builtin, match
    from mailmoat.classify.tokens import text_tokens

    sel = "\U000e0139"
    text = f"Please v{sel}e{sel}r{sel}i{sel}f{sel}y your acc\u200bount, your pass\u0336word will expire"
    assert {"verify", "account", "password"} <= text_tokens(text)
    hits = match(load_builtin(), Message(subject="Notice", text=text))
    assert "verify your account" in hits["LEXICON_CREDENTIAL"].terms


async def test_styled_letters(settings: Settings) -> None:
    # Mathematical bold italic sans: the reader sees "DOCTOR SAYS", a filter sees no word.
    found = await run(settings, Message(subject="𝘿𝙊𝘾𝙏𝙊𝙍 𝙎𝘼𝙔𝙎 do this", text="Read more below."))
    assert found["CONTENT_STYLED_LETTERS"].data["count"] == 2
    assert "'DOCTOR'" in found["CONTENT_STYLED_LETTERS"].evidence
    found = await run(settings, Message(subject="Offer", html_text="Claim your Ⓕⓡⓔⓔ gift today"))
    assert "CONTENT_STYLED_LETTERS" in found
    # One styled symbol (𝑥 in a formula), fullwidth letters in Japanese or Chinese text: not styling to dodge.
    plain = "Solve 𝑥 + 1 = 3. ＡＢＣ株式会社のご案内。会议在Ａ座举行。"
    assert "CONTENT_STYLED_LETTERS" not in await run(settings, Message(subject="Notes", text=plain))


async def test_lookalike_letters(settings: Settings) -> None:
    # Cyrillic а, с, е, о, у and Komi ԁ among Latin letters: the reader sees the words, a filter does not.
    lure = "Dear vɑluеd usеr, verify уоur ассоunt to keep your Lеԁgеr wallet."
    found = await run(settings, Message(subject="Account notice", text=lure))
    assert found["CONTENT_LOOKALIKE_LETTERS"].data["count"] == 5
    assert "'уоur' = 'your'" in found["CONTENT_LOOKALIKE_LETTERS"].evidence
    # Russian and Greek written in their own letters, accented Latin, one Greek letter in a term: not disguise.
    plain = "Здравствуйте, это обычное письмо. Καλημέρα σας. Café, naïve, Straße. The αβ-crystallin assay: TNFα, PPARγ and ERα, TNFα again."
    assert "CONTENT_LOOKALIKE_LETTERS" not in await run(settings, Message(subject="Notes", text=plain))


def test_the_lexicon_and_the_classifier_read_disguised_words_plainly() -> None:
    from mailmoat.analyzers.lexicon import load_builtin, match
    from mailmoat.classify.tokens import text_tokens

    text = "Please vеrify уоur ассоunt, your pаsswоrd will expire"
    assert {"verify", "your account", "password"} <= text_tokens(text)
    assert "verify your account" in match(load_builtin(), Message(subject="Notice", text=text))["LEXICON_CREDENTIAL"].terms
    # A look-alike letter in a link's host stays the link's own (the URL checks judge it).
    assert "url:pаypal.com" in text_tokens("see https://pаypal.com/login")



async def test_a_body_of_remote_pictures_and_a_link_is_image_spam(settings: Settings) -> None:
    banner = (
        '<html><body><center><a href="https://offer.example.top/c?id=7">'
        '<img src="https://cdn.example.top/banner.png" alt="Offer"></a><br>'
        '<a href="https://offer.example.top/u">'
        '<img src="https://cdn.example.top/unsub.gif"></a></center></body></html>'
    )
    found = await run(settings, parse(_raw("Your gift", banner, html=True)))
    assert "CONTENT_IMAGE_ONLY" in found and "offer.example.top" in found["CONTENT_IMAGE_ONLY"].evidence
    # The same pictures beside a paragraph of words, a picture with no link, a picture sent along
    # as an attachment: each is something else.
    worded = banner.replace("<br>", "<p>" + ORDINARY + "</p>")
    assert "CONTENT_IMAGE_ONLY" not in await run(settings, parse(_raw("Your gift", worded, html=True)))
    no_link = '<html><body><img src="https://cdn.example.org/photo.jpg"></body></html>'
    assert "CONTENT_IMAGE_ONLY" not in await run(settings, parse(_raw("Photo", no_link, html=True)))
    with_menu = parse(_raw("Your gift", banner, html=True))
    with_menu.parts.append(Part(path="2", content_type="application/pdf", filename="menu.pdf", is_attachment=True))
    assert "CONTENT_IMAGE_ONLY" not in await run(settings, with_menu)
