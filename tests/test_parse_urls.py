"""URLs: normalisation, hosts, registrable domains, IP literal and IDN flags, de-duplication."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailmoat.parse import parse
from mailmoat.parse.urls import UrlCollector, find_text_urls, make_url

SAMPLES = Path(__file__).parent / "samples"


@pytest.mark.parametrize(
    ("raw", "host"),
    [
        ("http://3232235777/x", "192.168.1.1"),
        ("http://0xC0A80101/x", "192.168.1.1"),
        ("http://0300.0250.0001.0001/", "192.168.1.1"),
        ("http://192.168.1.1:8080/", "192.168.1.1"),
        ("http://[::ffff:c000:280]/", "::ffff:c000:280"),
        ("http://127.1/", "127.0.0.1"),
    ],
)
def test_ip_literals(raw: str, host: str) -> None:
    u = make_url(raw, "href")
    assert u is not None and u.is_ip and u.host == host and u.registrable_domain == ""


def test_idn_and_registrable_domain() -> None:
    u = make_url("https://www.pаypal.com/login", "text")  # Cyrillic а
    assert u is not None and u.is_idn and u.host.startswith("www.xn--") and u.registrable_domain.startswith("xn--")
    u = make_url("http://xn--80ak6aa92e.com/", "href")
    assert u is not None and u.is_idn
    u = make_url("HTTPS://User:pw@Sub.Example.CO.UK:8443/Path?Q=1#F", "href")
    assert u is not None
    assert (u.scheme, u.host, u.port, u.registrable_domain) == ("https", "sub.example.co.uk", 8443, "example.co.uk")
    assert u.url == "https://User:pw@sub.example.co.uk:8443/Path?Q=1#F"


def test_userinfo_trick_and_odd_spellings() -> None:
    u = make_url("http://paypal.com@evil.example.net/", "href")
    assert u is not None and u.host == "evil.example.net" and u.registrable_domain == "example.net"
    u = make_url("  //cdn.example.com/x ", "src")
    assert u is not None and u.url == "http://cdn.example.com/x"
    u = make_url("https:\\\\evil.example.com\\path", "href")
    assert u is not None and u.host == "evil.example.com"
    u = make_url("https://exa\u200bmple.com/", "href")
    assert u is not None and u.host == "example.com"
    u = make_url("http://www.example。com/", "text")
    assert u is not None and u.host == "www.example.com"


def test_skipped_and_opaque_schemes() -> None:
    assert make_url("mailto:a@example.com", "href") is None
    assert make_url("#anchor", "href") is None
    assert make_url("relative/page.html", "href") is None
    assert make_url("cid:abc", "src") is None
    js = make_url("javascript:alert(1)", "href")
    assert js is not None and js.scheme == "javascript" and js.host == ""
    data = make_url("data:text/html;base64," + "A" * 1000, "href")
    assert data is not None and data.scheme == "data" and len(data.url) <= 256


def test_text_urls_trimmed() -> None:
    text = "Visit (https://example.com/a_(b)) now, or www.example.org. 访问http://cn.example.cn/路径 谢谢 https://x.example.com/?q=1>"
    assert list(find_text_urls(text)) == [
        "https://example.com/a_(b)",
        "www.example.org",
        "http://cn.example.cn/",
        "https://x.example.com/?q=1",
    ]


def test_collector_deduplicates_per_source_and_keeps_anchor() -> None:
    c = UrlCollector(limit=3)
    c.add("https://a.example.com/", "href", "")
    c.add("https://a.example.com/", "href", "Click")
    c.add("https://a.example.com/", "text")
    c.add("https://b.example.com/", "text")
    c.add("https://c.example.com/", "text")
    assert [(u.url, u.source, u.anchor_text) for u in c.urls] == [
        ("https://a.example.com/", "href", "Click"),
        ("https://a.example.com/", "text", ""),
        ("https://b.example.com/", "text", ""),
    ]
    assert c.overflow


def test_sample_urls_every_source() -> None:
    m = parse((SAMPLES / "parse_cid_lying.eml").read_bytes())
    by_source = {}
    for u in m.urls:
        by_source.setdefault(u.source, u)
    assert by_source["href"].anchor_text == "Microsoft Account"
    assert by_source["form"].host == "collect.example.ru"
    assert by_source["meta"].host == "refresh.example.net"
    assert by_source["css"].host == "cdn.example.com"
    ip = next(u for u in m.urls if u.is_ip)
    assert ip.host == "192.168.1.1" and ip.anchor_text == "click"
    assert any(u.is_idn and u.anchor_text == "PayPal" for u in m.urls)
    assert not any(u.url.startswith("mailto:") for u in m.urls)


def test_bare_urls_in_html_text_are_found() -> None:
    m = parse(b"Content-Type: text/html\r\n\r\n<p>Go to https://bare.example.com/x now</p><a href='https://a.example.com/'>link</a>")
    assert {(u.host, u.source) for u in m.urls} == {("bare.example.com", "text"), ("a.example.com", "href")}
