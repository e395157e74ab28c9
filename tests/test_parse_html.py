"""HTML bodies: visible text without hidden content, links with anchors, current thread."""

from __future__ import annotations

from pathlib import Path

from mailmoat.parse import current_thread, parse
from mailmoat.parse.html import analyse, meta_charset

SAMPLES = Path(__file__).parent / "samples"


def test_hidden_content_is_not_visible_text() -> None:
    info = analyse(
        "<html><head><title>T</title><style>p{}</style><script>evil()</script></head><body>"
        "<p>Shown</p><div style='display: none'>dn</div><span style='visibility:hidden'>vh</span>"
        "<span style='font-size:0px'>fs</span><span style='FONT-SIZE: 0'>fs2</span><p hidden>attr</p>"
        "<div style='max-height:0;overflow:hidden'>preheader</div><div style='width:0;height:0'>box</div>"
        "<span style='opacity:0'>op</span><div style='height:0'>still shown</div>"
        "<table><tr><td>cell1</td><td>cell2</td></tr></table>Pay<span>Pal</span>&nbsp;x\u200by"
        "</body></html>"
    )
    assert info.text == "Shown\nstill shown\ncell1\ncell2\nPayPal xy"


def test_text_sized_again_inside_a_zero_size_cell_is_visible() -> None:
    """Mail templates set font-size:0 on a cell to close the gaps between its columns and size
    the text in each column: that text is what the reader sees. Text left at size zero, or sized
    relative to zero (em, %), is hidden, at any depth."""
    info = analyse(
        "<body><table><tr><td style='font-size:0px;padding:0'> gap "
        "<div style='font-family:Arial;font-size:13px;line-height:1'>Your <b>account</b> is locked</div>"
        "<span>salad</span><span style='font-size:1.5em'>relative</span>"
        "<div style='font-size:small'>keyword <span style='font-size:0'>inner</span> sized</div>"
        "<font size='2'>old font</font>"
        "</td></tr></table>"
        "<p style='font-size:14px;font-size:0'>last one wins</p>"
        "<div style='font-size:0'><div style='display:none'><p style='font-size:12px'>never</p></div></div>"
        "</body>"
    )
    assert info.text == "Your account is locked\nkeyword sized\nold font"


def test_words_broken_by_text_too_small_to_see_read_whole() -> None:
    """Spam breaks its words with salad at sizes no screen draws (a trillionth of the window's
    width, half a pixel); the reader sees the words whole, and so must the filters."""
    info = analyse(
        "<body><p>Scan your de<span style='font-size: 0.00000000000000000000000000000097056vw;'>Eliette</span>vi"
        "<span style='font-size:1e-9px'>Estuaire</span>ce on<span style='font-size:0.5px'>Fouquet</span>line"
        " <span style='font-size:1px'>tiny but there</span></p></body>"
    )
    assert info.text == "Scan your device online tiny but there"
    assert info.hidden_in_words == 3


def test_deep_nesting_of_hidden_elements_hides_all_their_text() -> None:
    """Crafted depth (bench/hostile_text.py times these): nested zero-size elements, and hidden
    elements under a long chain of open ones, leave only the visible text."""
    html = "<body>" + "<span style='font-size:0'>x" * 3000 + "</span>" * 3000 + "<p>shown</p></body>"
    assert analyse(html).text == "shown"
    html = "<body>" + "<span>" * 3000 + "<b style='display:none'>x</b>" * 3000 + "y" + "</span>" * 3000 + "</body>"
    assert analyse(html).text == "y"


def test_links_forms_meta_css_and_base() -> None:
    info = analyse(
        "<html><head><base href='https://base.example.com/dir/'>"
        "<meta http-equiv='Refresh' content='0;URL=https://meta.example.com/'></head><body>"
        "<a href='page.html'>relative</a><a href='#top'>anchor</a>"
        "<a href='https://x.example.com/'><img src='https://img.example.com/a.png' alt='Sign in'></a>"
        "<form action='https://post.example.com/login'></form>"
        "<iframe src='https://frame.example.com/'></iframe>"
        "<div style=\"background:url('https://css.example.com/bg.png')\"></div>"
        "<table><tr><td background='https://bg.example.com/t.gif'></td></tr></table></body></html>"
    )
    assert ("https://base.example.com/dir/page.html", "href", "relative") in info.links
    assert ("https://x.example.com/", "href", "Sign in") in info.links
    assert ("https://meta.example.com/", "meta", "") in info.links
    assert ("https://post.example.com/login", "form", "") in info.links
    assert ("https://frame.example.com/", "src", "") in info.links
    assert ("https://css.example.com/bg.png", "css", "") in info.links
    assert ("https://img.example.com/a.png", "src", "") in info.links
    assert not any(url.endswith("#top") for url, _, _ in info.links)
    assert [r.kind for r in info.images] == ["img", "css", "background"]


def test_current_thread_html_quotes() -> None:
    info = analyse(
        "<div>Please pay the invoice today.</div><div class='gmail_quote'>On Mon, Bob wrote:"
        "<blockquote>old text</blockquote></div>"
    )
    assert info.current == "Please pay the invoice today."
    assert "old text" in info.text


def test_current_thread_text_markers() -> None:
    text = "New request\n\nOn Mon, 3 Mar 2025, Boss <b@example.com> wrote:\n> old\n"
    assert current_thread(text) == "New request"
    outlook = "Please call me\n\nFrom: Boss\nSent: Monday\nTo: you\nSubject: x\n\nold body"
    assert current_thread(outlook) == "Please call me"
    chinese = "请尽快付款\n\n------------------ 原始邮件 ------------------\n发件人: x"
    assert current_thread(chinese) == "请尽快付款"
    assert current_thread("line\n> quoted\nline2") == "line\nline2"
    assert current_thread("From: a friend, I write you a letter") == "From: a friend, I write you a letter"


def test_sample_visible_text_and_thread() -> None:
    m = parse((SAMPLES / "parse_cid_lying.eml").read_bytes())
    assert "hidden preheader" not in m.html_text and "zero font" not in m.html_text
    assert "script text" not in m.html_text and "Invoice" not in m.html_text
    assert "PayPal secure" in m.html_text
    assert m.current_thread.startswith("Dear customer")
    assert m.body_text == m.html_text


def test_meta_charset() -> None:
    assert meta_charset(b'<html><meta charset="gb2312">') == "gb2312"
    assert meta_charset(b'<meta http-equiv="Content-Type" content="text/html; charset=big5">') == "big5"
    assert meta_charset(b"<p>none</p>") is None
    m = parse(b"Content-Type: text/html\r\n\r\n<meta charset=gbk><p>" + "你好世界".encode("gbk") + b"</p>")
    assert m.html_text == "你好世界"


def test_hostile_nesting_falls_back_to_a_flat_reading() -> None:
    html = "<div>" * 30000 + "<a href='https://deep.example.com/'>go</a><img src='cid:x'><script>no</script>text"
    info = analyse(html)
    assert "html:too-deep" in info.defects
    assert ("https://deep.example.com/", "href", "") in info.links
    assert [r.ref for r in info.images] == ["cid:x"]
    assert info.text == "go text"
    normal = "<table>" + "<tr><td><div>cell</div></td></tr>" * 3000 + "</table>"
    assert "html:too-deep" not in analyse(normal).defects


def test_flat_reading_drops_script_blocks_and_keeps_unclosed_ones_as_text() -> None:
    from mailmoat.parse.html import _drop_raw_blocks

    assert _drop_raw_blocks("a<script>x</script >b<STYLE type=x>y</style>c") == "a b c"
    # An unclosed <head> stays text, and a later closed <script> is still dropped.
    assert _drop_raw_blocks("<p>hi<head>rest <script>s</script> <a href=x>") == "<p>hi<head>rest   <a href=x>"
    # Thousands of unclosed "<head": one pass (bench/hostile_text.py), links after them still read.
    info = analyse("<head" * 16_000 + "<a href='https://after.example.com/'>go</a>")
    assert "html:too-deep" in info.defects
    assert ("https://after.example.com/", "href", "") in info.links
