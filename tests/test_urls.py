"""Phishing links: lookalikes, homographs, anchors, IP/port/shortener/redirect tricks, credential forms, QR URLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailmoat.analyzers.base import AnalysisContext, AnalyzerEnv
from mailmoat.analyzers.urls import UrlAnalyzer
from mailmoat.config import Settings
from mailmoat.model import Action, Envelope, Finding, Url, Verdict
from mailmoat.parse.urls import make_url
from mailmoat.store.db import Store
from mailmoat.urlcheck.links import free_hosting, hosts_in_text, redirect_targets
from mailmoat.urlcheck.lookalike import DomainCatalog, edit_distance, skeleton
from tests.support.detmsg import message, simple, url

ORG = "acme-corp.cn"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = Settings()
    s.data_dir = str(tmp_path / "var")
    s.server.domains = [ORG]
    return s


@pytest.fixture
def analyzer(settings: Settings) -> UrlAnalyzer:
    return UrlAnalyzer(AnalyzerEnv(settings=settings))


async def _scan(an: UrlAnalyzer, urls: list[Url], html: str = "", from_: str = "Notice <n@sender.example>") -> dict[str, Finding]:
    msg = message(simple(from_), urls=urls, html=html)
    env = Envelope(mail_from=msg.from_.addr, rcpt_tos=[f"staff@{ORG}"])
    return {f.symbol: f for f in await an.analyze(AnalysisContext(message=msg, envelope=env, settings=an.env.settings))}


def test_skeleton_and_distance() -> None:
    assert skeleton("pаypa1") == "paypal"  # Cyrillic а, digit one
    assert skeleton("rnicrosoft") == "microsoft"
    assert edit_distance("microsfot", "microsoft", 1) == 1
    assert edit_distance("abcdef", "uvwxyz", 1) == 2


@pytest.mark.parametrize(
    ("host", "target", "kind"),
    [
        ("paypa1.com", "paypal.com", "homoglyph"),
        ("xn--pypal-4ve.com", "paypal.com", "idn-homograph"),
        ("micros0ft-support.net", "microsoft.com", "homoglyph"),
        ("rnicrosoft.com", "microsoft.com", "homoglyph"),
        ("wellsfrago.com", "wellsfargo.com", "typo"),
        ("secure-paypal.com.verify.example", "paypal.com", "brand-in-name"),
        ("icbc-cn.top", "icbc.com.cn", "brand-in-name"),
        ("中国银行.com", "boc.cn", "brand-in-name"),
        ("acme-c0rp.cn", ORG, "homoglyph"),
        # The organisation's hyphenated name as a subdomain of someone else's domain.
        ("acme-corp-mail.example-login.top", ORG, "brand-in-name"),
        ("acme-corp.webmail-upgrade.example", ORG, "brand-in-name"),
        # A platform where anyone publishes under any name is no tenant of ours.
        ("acme-corp.web.app", ORG, "brand-in-name"),
    ],
)
def test_catalog_finds_lookalikes(host: str, target: str, kind: str) -> None:
    look = DomainCatalog([ORG]).check(host)
    assert look is not None, host
    assert (look.target, look.kind) == (target, kind)


@pytest.mark.parametrize(
    "host",
    ["www.paypal.com", "paypalobjects.com", "mail.google.com", "googleapis.com", "pineapple.example", "transfer.example",
     "interact.example", "xn--fiqs8s.cn", "www.acme-corp.cn", "example.com", "amazonaws.com",
     # The organisation's own tenants on business software.
     "acme-corp.zendesk.com", "acme-corp.atlassian.net", "acme-corp.wd3.myworkdayjobs.com"],
)  # fmt: skip
def test_catalog_leaves_real_and_unrelated_domains_alone(host: str) -> None:
    assert DomainCatalog([ORG]).check(host) is None


async def test_brand_lookalike_link(analyzer: UrlAnalyzer) -> None:
    got = await _scan(analyzer, [url("https://paypa1.com/signin")])
    f = got["URL_LOOKALIKE_BRAND"]
    assert "https://paypa1.com/signin" in f.evidence and "PayPal (paypal.com)" in f.evidence
    assert f.data["imitates"] == "paypal.com"
    assert f.score < 10  # alone it tags; with a credential form it quarantines (below)


async def test_idn_homograph_and_protected_lookalike(analyzer: UrlAnalyzer) -> None:
    got = await _scan(analyzer, [url("https://xn--pypal-4ve.com/")])
    assert "pаypal.com (xn--pypal-4ve.com)" in got["URL_IDN_HOMOGRAPH"].evidence
    got = await _scan(analyzer, [url("http://oa.acme-c0rp.cn/login")])
    assert f"organisation's domain {ORG}" in got["URL_LOOKALIKE_PROTECTED"].evidence


async def test_brand_in_host_is_weak_and_sender_brand_is_excused(analyzer: UrlAnalyzer, settings: Settings) -> None:
    got = await _scan(analyzer, [url("https://paypal.com.account-verify.example/x")])
    assert got["URL_BRAND_IN_HOST"].score < settings.policy.thresholds.tag
    got = await _scan(analyzer, [url("https://paypal-events.example/x")], from_="PayPal <news@paypal.com>")
    assert "URL_BRAND_IN_HOST" not in got


async def test_clean_links(analyzer: UrlAnalyzer) -> None:
    urls = [url("https://www.paypal.com/myaccount"), url("https://news.example.org/a?id=3"), url("mailto:x@example.org"), url("https://中文网.cn/")]
    assert await _scan(analyzer, urls) == {}


async def test_typo_free_hosting_and_tld(analyzer: UrlAnalyzer) -> None:
    got = await _scan(analyzer, [url("https://wellsfrago.com/x"), url("https://login-check.web.app/"), url("https://deal.example.top/")])
    assert "Wells Fargo" in got["URL_TYPO_BRAND"].evidence and "URL_LOOKALIKE_BRAND" not in got
    assert "web.app" in got["URL_FREE_HOSTING"].evidence
    assert ".top" in got["URL_SUSPICIOUS_TLD"].evidence
    # Images on platforms say nothing.
    assert await _scan(analyzer, [url("https://x.web.app/logo.png", source="src")]) == {}
    # A form anyone can make, under Google's or Microsoft's name.
    got = await _scan(analyzer, [url("https://forms.gle/Ab12Cd34Ef"), url("https://forms.office.com/r/x1Y2z3")])
    assert "forms.gle" in got["URL_FREE_HOSTING"].evidence and got["URL_FREE_HOSTING"].data["count"] == 2
    # The same kind of form on a host that also serves documents: only its forms path counts.
    got = await _scan(analyzer, [url("https://docs.google.com/forms/d/e/1FAIpQLSd/viewform")])
    assert "docs.google.com/forms" in got["URL_FREE_HOSTING"].evidence
    assert await _scan(analyzer, [url("https://docs.google.com/document/d/1aBc/edit"), url("https://docs.google.com/formsx")]) == {}
    # A bucket on Amazon S3 under its regional name, as AWS writes every name now.
    for link in ("https://daotlxkffbrt.s3.us-east-1.amazonaws.com/KDsdvS.html", "https://b.s3-website.eu-central-1.amazonaws.com/",
                 "https://x.s3.dualstack.ap-south-1.amazonaws.com/login.html", "https://bucket.s3.amazonaws.com/a.html"):
        got = await _scan(analyzer, [url(link)])
        assert "amazonaws.com" in got["URL_FREE_HOSTING"].evidence, link
    assert await _scan(analyzer, [url("https://ec2-1-2-3-4.compute-1.amazonaws.com/status")]) == {}
    # A function endpoint on Google Cloud, as a kit's "account check" page.
    got = await _scan(analyzer, [url("https://us-east1-valid-arc-109017.cloudfunctions.net/login")])
    assert "cloudfunctions.net" in got["URL_FREE_HOSTING"].evidence
    # A host that looks like an endpoint until its end is no platform, and is read in one pass: a
    # pattern that could split "s3-a-a-…" many ways took minutes for 40 parts (bench/hostile_text.py).
    assert free_hosting("s3" + "-a" * 40 + ".example") == ""


async def test_mixed_script_host(analyzer: UrlAnalyzer) -> None:
    got = await _scan(analyzer, [url("https://exаmple-shop.com/")])  # Cyrillic а
    assert "CYRILLIC" in got["URL_MIXED_SCRIPT"].evidence


async def test_anchor_text_mismatch(analyzer: UrlAnalyzer) -> None:
    got = await _scan(analyzer, [url("https://login.evil.example/p", anchor="https://www.paypal.com/login")])
    f = got["URL_ANCHOR_BRAND_MISMATCH"]
    assert "shows www.paypal.com" in f.evidence and "login.evil.example" in f.evidence
    got = await _scan(analyzer, [url("https://click.esp.example/abc", anchor="www.shop.example")])
    assert "URL_ANCHOR_MISMATCH" in got and got["URL_ANCHOR_MISMATCH"].score < 2
    # A tracking link that carries the shown site is not a mismatch; neither is plain text.
    tracked = url("https://click.esp.example/r?u=https%3A%2F%2Fwww.shop.example%2Fsale", anchor="www.shop.example")
    got = await _scan(analyzer, [tracked, url("https://x.example/", anchor="Click here")])
    assert "URL_ANCHOR_MISMATCH" not in got
    # The sender's own site shown, the link through its mail provider's tracker: a newsletter.
    opaque = url("https://click.esp.example/ls/click?upn=aHR0cHM6Ly93d3c", anchor="www.shop.example")
    got = await _scan(analyzer, [opaque], from_="Shop <news@mail.shop.example>")
    assert "URL_ANCHOR_MISMATCH" not in got
    # The same link from another sender still is one.
    got = await _scan(analyzer, [opaque], from_="Shop <news@shop-deals.example>")
    assert "URL_ANCHOR_MISMATCH" in got


async def test_ip_port_userinfo_shortener(analyzer: UrlAnalyzer) -> None:
    got = await _scan(
        analyzer,
        [url("http://203.0.113.5/login.php"), url("https://pay.example:8443/x"), url("https://www.bank.example@evil.example/"), url("https://bit.ly/3abc")],
    )
    assert "203.0.113.5" in got["URL_IP"].evidence
    assert "port 8443" in got["URL_NONSTD_PORT"].evidence
    assert "www.bank.example" in got["URL_USERINFO"].evidence
    assert "bit.ly" in got["URL_SHORTENER"].evidence
    assert not any(s.startswith("QR_") for s in got)


async def test_intranet_addresses_are_not_bare_ip_links(analyzer: UrlAnalyzer) -> None:
    # An OA system or a router by its private address: only the reader's own network reaches it.
    got = await _scan(analyzer, [url("http://10.20.1.15:8080/oa/salary"), url("http://192.168.1.1/"), url("http://[fd00::5]/wiki")])
    assert "URL_IP" not in got and "URL_NONSTD_PORT" not in got
    # The same address disguised as a number is still the trick, and public addresses still count.
    disguised = make_url("http://3232235777/login", "href")
    assert disguised is not None and disguised.host == "192.168.1.1"
    got = await _scan(analyzer, [disguised])
    assert "URL_IP" in got
    got = await _scan(analyzer, [url("http://192.168.1.1/setup", source="qr"), url("http://198.51.100.20/pay")])
    assert "198.51.100.20" in got["URL_IP"].evidence and "192.168.1.1" not in got["URL_IP"].evidence
    assert "QR_URL_IP" not in got


async def test_open_redirect_target_is_checked(analyzer: UrlAnalyzer) -> None:
    assert redirect_targets("https://www.google.com/url?q=https%3A%2F%2Fpaypa1.com%2Fx&sa=D") == ["https://paypa1.com/x"]
    got = await _scan(analyzer, [url("https://www.google.com/url?q=https%3A%2F%2Fpaypa1.com%2Fx&sa=D")])
    assert "redirects to https://paypa1.com/x" in got["URL_REDIRECT"].evidence
    assert "redirect target" in got["URL_LOOKALIKE_BRAND"].evidence


def test_redirect_targets_in_base64() -> None:
    """Click trackers and redirectors that carry the target in base64 ("aHR0c" is "http"): in a
    query value (standard alphabet, itself percent-encoded inside, as ActiveCampaign does), in a
    path segment (URL-safe, no padding), with "+" read as a space; anything else is no target."""
    tracker = "https://acct.lt.tracker.example/Prod/link-tracker?redirectUrl=aHR0cHMlM0ElMkYlMkZwb3J0YWwtbXlsZWRnZXIuY29tJTJG&sig=9f"
    assert redirect_targets(tracker) == ["https://portal-myledger.com/"]
    assert redirect_targets("https://x.mailer.example/lnk/AVQAAFx/aHR0cHM6Ly93d3cuZXhvZHVzLmNvbQ") == ["https://www.exodus.com"]
    # "https://paypa1.com/a~b" encodes with a "+", which parse_qsl hands over as a space; the
    # decoded text ends at the first character no URL holds (">" here).
    assert redirect_targets("https://r.example/?u=aHR0cHM6Ly9wYXlwYTEuY29tL2F+Yg==") == ["https://paypa1.com/a~b"]
    assert redirect_targets("https://r.example/?u=aHR0cHM6Ly9wYXlwYTEuY29tL2E/Yj1jPg==") == ["https://paypa1.com/a?b=c"]
    for value in ("aHR0cA", "aHR0cHM6Ly9!!!", "aHR0cHMlM0ElMkYlMkY=", "aGVsbG8gd29ybGQ=", "aHR0c%%%"):
        assert redirect_targets(f"https://r.example/?u={value}") == [], value


async def test_a_base64_redirect_target_is_checked(analyzer: UrlAnalyzer) -> None:
    """Where a tracker's base64 target leads is checked; that a link is wrapped so is how mail
    services write every link (SendGrid's upn=), and raises no URL_REDIRECT of its own."""
    link = "https://news.tracker.example/c?u=aHR0cHM6Ly9wYXlwYTEuY29tL3NpZ25pbg"
    assert redirect_targets(link, base64_too=False) == []
    got = await _scan(analyzer, [url(link)])
    assert "redirect target" in got["URL_LOOKALIKE_BRAND"].evidence and "paypa1.com/signin" in got["URL_LOOKALIKE_BRAND"].evidence
    assert "URL_REDIRECT" not in got
    newsletter = "https://click.esp-sender.example/ls/click?upn=aHR0cHM6Ly93d3cubm9ydGh3aW5kLW91dGRvb3IuZXhhbXBsZS9ibGFjay1mcmlkYXk"
    assert await _scan(analyzer, [url(newsletter)]) == {}


def test_bing_click_redirect_target() -> None:
    """Bing's click redirect (/ck/a?...&u=a1<base64>), which phishing kits link through, carries
    its target in base64 behind the two letters "a1"."""
    link = ("https://www.bing.com/ck/a?!&&p=98042caa4cc4&ptn=3&ver=2&hsh=4&fclid=148b8bc7"
            "&u=a1aHR0cHM6Ly9jcGYtZHJvaXRzLmV4YW1wbGUuc3BhY2UvZm9ybWF0aW9u&ntb=1")
    assert redirect_targets(link) == ["https://cpf-droits.example.space/formation"]
    assert redirect_targets("https://r.example/?u=a1aGVsbG8gd29ybGQ=") == []


async def test_where_a_redirect_lands_is_checked_for_free_hosting_and_abused_tlds(analyzer: UrlAnalyzer) -> None:
    """A tracker's or an open redirect's target is where the reader lands: a page on a free
    platform or an abused top-level domain there is as suspect as a link to it; the wrapper's
    own host is not blamed for it."""
    bing = ("https://www.bing.com/ck/a?!&&p=98042caa4cc4&ptn=3&ver=2&hsh=4&fclid=148b8bc7"
            "&u=a1aHR0cHM6Ly9jcGYtZHJvaXRzLmV4YW1wbGUuc3BhY2UvZm9ybWF0aW9u&ntb=1")
    got = await _scan(analyzer, [url(bing)])
    assert "www.bing.com to cpf-droits.example.space (.space)" in got["URL_SUSPICIOUS_TLD"].evidence
    pages = "https://click.esp-sender.example/ls/click?upn=aHR0cHM6Ly9jbGFpbS1yZXdhcmQud2ViLmFwcC9zdGFydA"
    got = await _scan(analyzer, [url(pages)])
    assert "claim-reward.web.app" in got["URL_FREE_HOSTING"].evidence
    assert "URL_REDIRECT" not in got and "URL_SUSPICIOUS_TLD" not in got


async def test_data_and_javascript_links(analyzer: UrlAnalyzer) -> None:
    got = await _scan(analyzer, [url("data:text/html;base64,PGgxPng8L2gxPg=="), url("javascript:alert(1)"), url("data:image/png;base64,iVBOR")])
    assert "text/html" in got["URL_DATA_URI"].evidence and got["URL_DATA_URI"].data["count"] == 1
    assert "URL_JAVASCRIPT" in got


async def test_credential_form_with_lookalike_reaches_quarantine(analyzer: UrlAnalyzer, settings: Settings) -> None:
    html = (
        '<html><body><p>Verify your PayPal account</p><form action="https://paypa1.com/post" method="post">'
        '<input name="email"><input type="password" name="pass"></form></body></html>'
    )
    got = await _scan(analyzer, [url("https://paypa1.com/post", source="form")], html=html)
    assert "password input field 'pass'" in got["HTML_PASSWORD_FORM"].evidence
    assert "https://paypa1.com/post" in got["HTML_FORM_EXTERNAL"].evidence
    assert "URL_LOOKALIKE_CREDENTIALS" in got
    assert sum(f.score for f in got.values()) >= settings.policy.thresholds.quarantine


async def test_search_boxes_and_ftp_logins_are_not_traps(analyzer: UrlAnalyzer) -> None:
    html = '<form action="https://search.example/q" method="get"><input name="q"></form>'
    got = await _scan(analyzer, [url("ftp://movie:movie@192.0.2.44/pub/")], html=html)
    assert got == {}


async def test_plain_password_form_alone_tags_only(analyzer: UrlAnalyzer, settings: Settings) -> None:
    got = await _scan(analyzer, [], html='<form><input type="PASSWORD"></form>')
    total = sum(f.score for f in got.values())
    assert settings.policy.thresholds.tag <= total < settings.policy.thresholds.quarantine


async def test_qr_urls_get_qr_symbols_too(analyzer: UrlAnalyzer) -> None:
    got = await _scan(analyzer, [url("https://paypa1.com/q", source="qr"), url("http://198.51.100.20/pay", source="qr"), url("https://t.cn/abc", source="qr")])
    assert "URL_LOOKALIKE_BRAND" in got and "PayPal" in got["QR_URL_LOOKALIKE"].evidence
    assert "QR code" in got["URL_IP"].evidence and "QR_URL_IP" in got
    assert "QR_URL_SHORTENER" in got and "URL_SHORTENER" in got


def test_hosts_in_anchor_text() -> None:
    assert hosts_in_text("Visit www.PayPal.com today") == ["www.paypal.com"]
    assert hosts_in_text("invoice.pdf") == []
    assert hosts_in_text("Click here") == []


async def test_new_domains_with_store_history(settings: Settings, tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'h.db'}")
    for i in range(3):
        msg = message(simple(f"a{i}@partner.example"), urls=[url(f"https://known-site.example/p{i}")])
        store.record_message(Envelope(mail_from=f"a{i}@partner.example", rcpt_tos=[f"s@{ORG}"]), msg, Verdict(action=Action.DELIVER, score=0))
    an = UrlAnalyzer(AnalyzerEnv(settings=settings, store=store))
    assert an.history is not None
    an.history.min_history = 3
    got = await _scan(an, [url("https://www.known-site.example/"), url("https://fresh-site.example/x")])
    assert "fresh-site.example" in got["URL_NEW_DOMAIN"].evidence
    assert "known-site" not in got["URL_NEW_DOMAIN"].evidence
    # Behind a click tracker this site knows, the target's domain is what is new.
    tracked = "https://www.known-site.example/c?u=aHR0cHM6Ly9sdXJlLWRvbWFpbi5leGFtcGxlL2xvZ2lu"
    got = await _scan(an, [url(tracked)])
    assert got["URL_NEW_DOMAIN"].data["domain"] == "lure-domain.example"
    an.history.min_history = 1000  # too little history: no judgement
    an.history._size = None
    assert "URL_NEW_DOMAIN" not in await _scan(an, [url("https://fresh-site.example/x")])
    store.close()


def test_seen_domains_are_remembered_and_only_new_ones_are_looked_up(tmp_path: Path) -> None:
    from mailmoat.urlcheck.history import History

    store = Store(f"sqlite:///{tmp_path / 'h.db'}")
    msg = message(simple("a@partner.example"), urls=[url("https://known-site.example/p")])
    store.record_message(Envelope(mail_from="a@partner.example", rcpt_tos=[f"s@{ORG}"]), msg, Verdict(action=Action.DELIVER, score=0))
    history = History(store)
    queries = 0
    real = history._session

    def counting() -> object:
        nonlocal queries
        queries += 1
        return real()

    history._session = counting  # type: ignore[method-assign]
    ask = {"known-site.example": ["www.known-site.example"], "fresh-site.example": ["fresh-site.example"]}
    assert history.unseen_domains(ask) == {"fresh-site.example"} and queries == 1
    assert history.unseen_domains({"known-site.example": []}) == set() and queries == 1  # remembered
    assert history.unseen_domains(ask) == {"fresh-site.example"} and queries == 2  # never remembered as unseen
    later = message(simple("b@partner.example"), urls=[url("https://fresh-site.example/x")])
    store.record_message(Envelope(mail_from="b@partner.example", rcpt_tos=[f"s@{ORG}"]), later, Verdict(action=Action.DELIVER, score=0))
    assert history.unseen_domains(ask) == set() and queries == 3
    assert history.unseen_domains(ask) == set() and queries == 3
    store.close()


def test_html_forms_found_in_any_letter_case_and_skipped_without_tags() -> None:
    from mailmoat.urlcheck.htmlforms import inspect_html

    upper = '<FORM METHOD=POST ACTION="https://evil.example/x"><INPUT TYPE=PASSWORD NAME=pw></FORM>'
    assert {i.kind for i in inspect_html(upper)} == {"password", "external-form"}
    assert inspect_html("<p>type your password in the form below</p>") == []


def test_domain_lists_match_deep_and_absurdly_long_hosts() -> None:
    from mailmoat.urlcheck.domains import in_domains, last_labels
    from mailmoat.urlcheck.links import free_hosting

    assert in_domains("a.b.c.d.e.f.g.h.example.com", {"example.com"})
    assert not in_domains("example.com.evil.example", {"example.com"})
    # 20,000 labels: looked up by the last ones only (bench/hostile_text.py: linear, not quadratic).
    assert in_domains("www." * 20_000 + "example.com", {"example.com"})
    assert last_labels("a.b.c", 2) == "b.c" and last_labels("b.c", 2) == "b.c"
    assert free_hosting("www." * 20_000 + "x.pages.dev") == "pages.dev"
