"""Impersonation: departments, executives, brands, lookalike From domains, Reply-To, internal accounts with history."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mailmoat.analyzers.base import AnalysisContext, AnalyzerEnv
from mailmoat.analyzers.impersonation import ImpersonationAnalyzer
from mailmoat.config import Settings
from mailmoat.model import Action, Direction, Envelope, Finding, Verdict
from mailmoat.store.db import Store
from tests.support.detmsg import message, simple, url

ORG = "acme-corp.cn"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = Settings()
    s.data_dir = str(tmp_path / "var")
    s.server.domains = [ORG]
    s.org.executives = ["Zhang Wei", "李强"]
    s.org.names = ["Acme"]
    return s


async def _scan(an: ImpersonationAnalyzer, from_: str, direction: Direction = Direction.INBOUND, extra: str = "", prior: list[Finding] | None = None) -> dict[str, Finding]:
    msg = message(simple(from_, extra=extra))
    env = Envelope(mail_from=msg.from_.addr, rcpt_tos=[f"staff@{ORG}"], peer_ip="203.0.113.9", direction=direction)
    ctx = AnalysisContext(message=msg, envelope=env, settings=an.env.settings, prior=list(prior or []))
    return {f.symbol: f for f in await an.analyze(ctx)}


@pytest.mark.parametrize(
    "from_",
    ["财务部 <notice@mail-service.cn>", "公司财务部 <a@b-mail.com>", "财务部-工资补贴 <a@b-mail.com>", "工资补贴 财务部 <a@b-mail.com>", "公司 财务部 <a@b-mail.com>", "Acme 财务部 <a@b-mail.com>", "人事行政部 <x@qq.com>", "Payroll Team <pay@outside.example>", "HR Department <hr@hr-portal.example>", "Acme Finance <f@outside.example>"],
)
async def test_outside_mail_claiming_a_department(settings: Settings, from_: str) -> None:
    got = await _scan(ImpersonationAnalyzer(AnalyzerEnv(settings=settings)), from_)
    f = got["IMPERSONATION_DEPARTMENT"]
    assert f.score == 5.0
    assert "from outside" in f.evidence and f.data["claim"]


async def test_claims_in_traditional_characters(settings: Settings) -> None:
    """財務部 is 财务部 and 李強 is 李强: the fraud written in Traditional characters claims the same."""
    an = ImpersonationAnalyzer(AnalyzerEnv(settings=settings))
    f = (await _scan(an, "財務部 <notice@mail-service.cn>"))["IMPERSONATION_DEPARTMENT"]
    assert f.score == 5.0 and f.data["claim"] == "财务部" and '"財務部"' in f.evidence  # shown as written
    assert "IMPERSONATION_EXECUTIVE" in await _scan(an, "李強 <boss@free-mail.example>")
    assert "IMPERSONATION_DEPARTMENT" not in await _scan(an, "華星科技/財務部 <caiwu@huaxing-tech.example>")


@pytest.mark.parametrize(
    "from_",
    ["财 务 部 <notice@mail-service.cn>", "财.务.部 工资补贴 <a@b-mail.com>", "華星科技 財-務-部 <a@b-mail.com>", "人\u200b事\u200b部 <a@b-mail.com>", "行 政 <a@b-mail.com>"],
)
async def test_a_department_written_apart_is_a_claim(settings: Settings, from_: str) -> None:
    """财 务 部, 财.务.部, 人(zero-width)事(zero-width)部: written apart to dodge the check, and no
    company writes its own department so, so even after another company's name it is a claim."""
    f = (await _scan(ImpersonationAnalyzer(AnalyzerEnv(settings=settings)), from_))["IMPERSONATION_DEPARTMENT"]
    assert f.score == 5.0 and f.data["claim"] in {"财务部", "人事部", "行政"}


async def test_characters_apart_that_only_look_like_a_department(settings: Settings) -> None:
    # 人 事 across two words of a name: "某人" and "事务所" (a law firm).
    got = await _scan(ImpersonationAnalyzer(AnalyzerEnv(settings=settings)), "张某人 事务所 <office@law.example>")
    assert not {"IMPERSONATION_DEPARTMENT", "IMPERSONATION_DEPARTMENT_MENTION"} & set(got)


@pytest.mark.parametrize(
    "from_",
    ["Yahoo Finance <news@yahoo.com>", "深圳市信达贸易有限公司/财务部 <feng@trade.example>", "华星科技 财务部 <caiwu@huaxing-tech.example>", "华星科技/财务部 <caiwu@huaxing-tech.example>"],
)
async def test_department_word_in_a_longer_name_is_only_a_mention(settings: Settings, from_: str) -> None:
    got = await _scan(ImpersonationAnalyzer(AnalyzerEnv(settings=settings)), from_)
    assert "IMPERSONATION_DEPARTMENT" not in got
    assert got["IMPERSONATION_DEPARTMENT_MENTION"].score <= 1.0


async def test_sender_platforms_and_typos(settings: Settings) -> None:
    an = ImpersonationAnalyzer(AnalyzerEnv(settings=settings))
    got = await _scan(an, "Notice <n@qmhs.onmicrosoft.com>")
    assert "onmicrosoft.com" in got["FROM_FREE_HOSTING"].evidence and "FROM_BRAND_IN_DOMAIN" not in got
    got = await _scan(an, "Wells <alerts@wellsfrago.com>")
    assert got["FROM_TYPO_BRAND"].data["imitates"] == "wellsfargo.com"
    assert "FROM_SUSPICIOUS_TLD" in await _scan(an, "Deals <d@cheap-deals.top>")


async def test_a_help_desk_customer_signed_with_another_name(settings: Settings) -> None:
    """A company's help desk signs with its own name; a trial tenant opened to send lures does not."""
    an = ImpersonationAnalyzer(AnalyzerEnv(settings=settings))
    got = await _scan(an, "Trust Verify <support@rosegoldparis.zendesk.com>")
    assert "'rosegoldparis'" in got["FROM_SAAS_TENANT_UNNAMED"].evidence
    assert got["FROM_SAAS_TENANT_UNNAMED"].data["platform"] == "zendesk.com"
    for own in ("Acme Support <support@acme.zendesk.com>", "AcmeInc Help Center <help@acmeinc.freshdesk.com>",
                "Acme <jobs@mail.acme-corp.myworkdayjobs.com>", "Newsletter <news@example.com>"):
        assert "FROM_SAAS_TENANT_UNNAMED" not in await _scan(an, own), own
    # A brand's own country domain is not a lookalike.
    assert await _scan(an, "Yahoo <news@yahoo.ca>") == {}


async def test_ordinary_outside_sender_is_clean(settings: Settings) -> None:
    got = await _scan(ImpersonationAnalyzer(AnalyzerEnv(settings=settings)), "Li Na <lina@partner.example>")
    assert got == {}


async def test_department_from_own_domain_inbound_without_dmarc_is_a_spoof(settings: Settings) -> None:
    an = ImpersonationAnalyzer(AnalyzerEnv(settings=settings))
    got = await _scan(an, f"财务部 <caiwu@{ORG}>")
    # Unauthenticated, our own domain earns the claim no trust: the spoof and the claim both count.
    assert "IMPERSONATION_DEPARTMENT" in got
    assert ORG in got["FROM_SPOOFS_PROTECTED"].evidence
    dmarc = Finding(symbol="DMARC_PASS", score=-1.0)
    assert await _scan(an, f"财务部 <caiwu@{ORG}>", prior=[dmarc]) == {}


@pytest.mark.parametrize("from_", ["Zhang Wei <zw.ceo@gmail.com>", "zhang wei (CEO) <ceo@exec-mail.example>", "李强总 <lq@163.com>"])
async def test_executive_names_from_outside(settings: Settings, from_: str) -> None:
    got = await _scan(ImpersonationAnalyzer(AnalyzerEnv(settings=settings)), from_)
    assert got["IMPERSONATION_EXECUTIVE"].score == 6.0


async def test_lookalike_of_own_domain(settings: Settings) -> None:
    an = ImpersonationAnalyzer(AnalyzerEnv(settings=settings))
    got = await _scan(an, "HR <hr@acme-c0rp.cn>")
    f = got["FROM_LOOKALIKE_PROTECTED"]
    assert f.data["imitates"] == ORG and "look-alike characters" in f.evidence
    # The external side of the internal-fraud wave: department name + lookalike reaches quarantine.
    assert sum(x.score for x in got.values()) >= settings.policy.thresholds.quarantine
    got = await _scan(an, "News <n@acme-corp.net>")
    assert "FROM_SIMILAR_PROTECTED" in got and "FROM_LOOKALIKE_PROTECTED" not in got


async def test_brand_display_and_lookalike_domain(settings: Settings) -> None:
    an = ImpersonationAnalyzer(AnalyzerEnv(settings=settings))
    got = await _scan(an, "PayPal Service <service@paypa1.com>")
    assert "DISPLAY_NAME_BRAND" in got
    assert got["FROM_LOOKALIKE_BRAND"].data["imitates"] == "paypal.com"
    assert await _scan(an, "PayPal <service@paypal.com>") == {}
    # A brand's other sending domains are its own: La Poste's parcels come from colissimo.fr,
    # SharePoint's sharing notices from sharepointonline.com, Prime Video's from primevideo.com.
    assert await _scan(an, "La Poste - Colissimo <noreply@colissimo.fr>") == {}
    assert await _scan(an, "SharePoint Online <no-reply@sharepointonline.com>") == {}
    assert await _scan(an, "Amazon Prime Video <no-reply@primevideo.com>") == {}
    # Every post to a Google Group comes from the group's address at googlegroups.com.
    assert await _scan(an, "\"'Jane Doe' via Dev Group\" <dev-group@googlegroups.com>") == {}
    assert got_brand(await _scan(an, "Colissimo <suivi@colis-relivraison.example>")) == "La Poste"
    got = await _scan(an, "国家税务总局 <tax@tax-refund.example>")
    assert "国家税务总局" in got["DISPLAY_NAME_BRAND"].evidence
    # Tax offices and public services of the European waves: their own mail is theirs, the same
    # name on mail from elsewhere is a claim.
    for display, own, brand in (("Mon Compte Formation", "ne-pas-repondre@moncompteformation.gouv.fr", "Mon Compte Formation"),
                                ("Belastingdienst", "noreply@belastingdienst.nl", "Belastingdienst"),
                                ("Agencia Tributaria", "notificaciones@correo.aeat.es", "Agencia Tributaria"),
                                ("DGFiP", "ne-pas-repondre@dgfip.finances.gouv.fr", "DGFiP"),
                                ("MINISTÉRIO DA FAZENDA", "comunicado@fazenda.gov.br", "Receita Federal")):
        assert await _scan(an, f"{display} <{own}>") == {}, display
        assert got_brand(await _scan(an, f"{display} <s703140@charter-school.example>")) == brand, display
    # Cyrillic а in the display name: the reader sees PayPal.
    assert "DISPLAY_NAME_BRAND" in await _scan(an, "PаyPаl Service <service@pay-notice.example>")
    # A combining grapheme joiner after every letter draws nothing: the reader sees "EVRi Delivery".
    cgj = "\u034f".join("EVRi") + " " + "\u034f".join("Delivery")
    assert got_brand(await _scan(an, f'" {cgj} . " <mailapps@articleboxes.example>')) == "Evri"


def got_shown(got: dict[str, Finding]) -> str:
    return str(got["DISPLAY_NAME_ADDRESS_MISMATCH"].data["shown"]) if "DISPLAY_NAME_ADDRESS_MISMATCH" in got else ""


def got_brand(got: dict[str, Finding]) -> str:
    return str(got["DISPLAY_NAME_BRAND"].data["brand"]) if "DISPLAY_NAME_BRAND" in got else ""


async def test_brand_names_of_several_words_and_signs(settings: Settings) -> None:
    """Names of several words match as written, whole words only; names with signs (AT&T) too."""
    an = ImpersonationAnalyzer(AnalyzerEnv(settings=settings))
    got = await _scan(an, "Bank of America Alerts <alerts@secure-notice.example>")
    assert got["DISPLAY_NAME_BRAND"].data["brand"] == "Bank of America"
    assert (await _scan(an, "AT&T Billing <bill@pay-notice.example>"))["DISPLAY_NAME_BRAND"].data["claim"] == "AT&T"
    for display in ("Bank of Americana Tours", "Bank, of America", "Mybank of America"):
        assert "DISPLAY_NAME_BRAND" not in await _scan(an, f"{display} <a@firm.example>"), display


async def test_a_brand_that_is_also_a_word_is_claimed_by_that_word_alone(settings: Settings) -> None:
    """"Ledger", "Exodus Wallet" or "Katie from Ledger" from elsewhere claims the brand; "General
    Ledger Team" and "Cathy from General Ledger" do not."""
    an = ImpersonationAnalyzer(AnalyzerEnv(settings=settings))
    for display in ("Ledger", "Ledger Support", "EXODUS WALLET", "Chase Bank", "Katie from Ledger", "Freddie From Ripple", "Team Ripple"):
        got = await _scan(an, f"{display} <noreply@jtidrive.example>")
        assert "DISPLAY_NAME_BRAND" in got, display
    assert await _scan(an, "Ledger <noreply@ledger.com>") == {}
    for display in ("General Ledger Team", "Chase Smith", "Office", "Booking Office", "Visa", "Cathy from General Ledger",
                    "Bob from Chase Street", "Ripple Effect Consulting", "from"):
        assert "DISPLAY_NAME_BRAND" not in await _scan(an, f"{display} <a@firm.example>"), display


async def test_a_brand_name_beside_a_trade_mark_or_underscores(settings: Settings) -> None:
    """NFKC writes "™" as the letters TM joined to the name ("McafeeTM"); kits join words with
    underscores. Both still claim the brand."""
    an = ImpersonationAnalyzer(AnalyzerEnv(settings=settings))
    for display, brand in (("Mcafee™", "McAfee"), ("Norton™ Support", "Norton"), ("Liberty_Mutual_Team", "Liberty Mutual"),
                           ("Dear Sam's Club Customer", "Sam's Club"), ("Kundenservice Deutsche Bahn", "Deutsche Bahn")):
        assert got_brand(await _scan(an, f"{display} <support@bottega-sandali.example>")) == brand, display
    assert "DISPLAY_NAME_BRAND" not in await _scan(an, "Wells__Fargo Street Deli <a@firm.example>")


async def test_a_brand_name_in_disguise(settings: Settings) -> None:
    """A brand's name in look-alike letters, with invisible characters, in styled letters or with
    its letters written apart is hidden from a check on purpose: DISPLAY_NAME_BRAND_DISGUISED
    beside the claim, 6 points: with the claim's 3 a tag on its own, and held with any other sign
    (no business writes its own name in disguise). Traditional Chinese and full-width letters are
    how people type, not a disguise."""
    an = ImpersonationAnalyzer(AnalyzerEnv(settings=settings))
    for display, how in (("L\u0435\u0501g\u0435r", "look-alike letters"), ("T E M U", "letters written apart"),
                         ("M\U000e0139i\U000e0139c\U000e0139rosoft account team", "invisible characters"),
                         ("\U0001d400\U0001d426\U0001d41a\U0001d433\U0001d428\U0001d427", "styled letters")):
        got = await _scan(an, f"{display} <jennifer@shalini-design.example>")
        assert "DISPLAY_NAME_BRAND" in got, display
        f = got["DISPLAY_NAME_BRAND_DISGUISED"]
        assert f.score == 6.0 and how in f.evidence, (display, f.evidence)
        assert got["DISPLAY_NAME_BRAND"].score + f.score == 9.0
    for display in ("Ledger", "中國銀行", "\uff24\uff28\uff2c快递", "Mcafee™"):
        got = await _scan(an, f"{display} <jennifer@shalini-design.example>")
        assert "DISPLAY_NAME_BRAND" in got and "DISPLAY_NAME_BRAND_DISGUISED" not in got, display
    assert await _scan(an, "T E M U <noreply@temu.com>") == {}


async def test_a_brand_name_run_together_is_claimed(settings: Settings) -> None:
    """A brand's name of several words written as one word or with hyphens ("TrustWallet",
    "Trust-Wallet"), or a one-word name with a service word run on ("MetaMaskTeam"), claims the
    brand as the name written plainly does. Hyphenated personal names and words that merely end
    in a service word ("Helpdesk", "Skincare") claim nothing, and the brand's own mail is its own."""
    an = ImpersonationAnalyzer(AnalyzerEnv(settings=settings))
    for display, brand in (("TrustWallet APP", "Trust Wallet"), ("Trust-Wallet", "Trust Wallet"),
                           ("MercadoPago", "Mercado Pago"), ("WellsFargo Alerts", "Wells Fargo"),
                           ("MetaMaskTeam", "MetaMask"), ("PayPalSupport", "PayPal")):
        assert got_brand(await _scan(an, f"{display} <notice@pepsup.example>")) == brand, display
    for display in ("Anne-Marie Fargo", "Helpdesk", "Skincare Team", "Freshdesk", "Jean-Baptiste De La Rochefoucauld"):
        assert "DISPLAY_NAME_BRAND" not in await _scan(an, f"{display} <a@firm.example>"), display
    assert await _scan(an, "TrustWallet <support@trustwallet.com>") == {}


async def test_a_brand_name_written_apart_is_claimed(settings: Settings) -> None:
    """"T E M U" or "P.a.y.P.a.l" is written so to slip past a check of the name: it claims the
    brand as the name itself would. Initials ("J. R. Tolkien") and words written apart that make no
    brand claim nothing."""
    an = ImpersonationAnalyzer(AnalyzerEnv(settings=settings))
    for display, brand in (("T E M U", "Temu"), ("T-e-m-u Pallets Department", "Temu"), ("P.a.y.P.a.l Service", "PayPal"),
                           ("N e t f l i x", "Netflix"), ("中 国 银 行", "中国银行")):
        assert got_brand(await _scan(an, f"{display} <jessica@mail-sender.example>")) == brand, display
    for display in ("J. R. R. Tolkien", "Anna B Smith", "G e n e r a l Ledger Team", "A B"):
        assert "DISPLAY_NAME_BRAND" not in await _scan(an, f"{display} <a@firm.example>"), display
    assert await _scan(an, "T E M U <noreply@temu.com>") == {}


async def _scan_links(an: ImpersonationAnalyzer, from_: str, links: list[str], prior: list[Finding] | None = None, source: str = "href") -> dict[str, Finding]:
    msg = message(simple(from_), urls=[url(u, source=source) for u in links])
    env = Envelope(mail_from=msg.from_.addr, rcpt_tos=[f"staff@{ORG}"], peer_ip="203.0.113.9")
    ctx = AnalysisContext(message=msg, envelope=env, settings=an.env.settings, prior=list(prior or []))
    return {f.symbol: f for f in await an.analyze(ctx)}


async def test_a_link_named_after_the_brand_the_display_name_claims(settings: Settings) -> None:
    """"Ledger" from elsewhere, linking portal-myledger.com (directly or through a tracker's base64
    target): the link checks leave word-like brand names out of brand-in-name, the claim makes it count."""
    an = ImpersonationAnalyzer(AnalyzerEnv(settings=settings))
    got = await _scan_links(an, "Ledger <rodrigo@tradestars.example>", ["https://portal-myledger.com/"])
    f = got["DISPLAY_NAME_BRAND_HOST"]
    assert f.score == 3.0 and f.data["host"] == "portal-myledger.com" and f.data["brand"] == "Ledger"
    assert "named after Ledger but not Ledger's" in f.evidence
    tracker = "https://acct.lt.tracker.example/Prod/link-tracker?redirectUrl=aHR0cHMlM0ElMkYlMkZsZWRnZXIucmVzdG9yZS1teWFzc2V0cy5jb20="
    assert (await _scan_links(an, "Ledger <rodrigo@tradestars.example>", [tracker]))["DISPLAY_NAME_BRAND_HOST"].data["host"] == "ledger.restore-myassets.com"
    for links in (["https://www.ledger.com/academy"], ["https://ledger.fr/"], ["https://www.example.org/"], ["http://203.0.113.7/ledger"]):
        assert "DISPLAY_NAME_BRAND_HOST" not in await _scan_links(an, "Ledger <rodrigo@tradestars.example>", links), links
    # No claim, no finding: a bookkeeping firm's own domain says "ledger" in good faith.
    assert "DISPLAY_NAME_BRAND_HOST" not in await _scan_links(an, "General Ledger Team <gl@firm.example>", ["https://myledger-books.example/"])
    # An image's host is not where the reader is sent.
    assert "DISPLAY_NAME_BRAND_HOST" not in await _scan_links(an, "Ledger <a@firm.example>", ["https://cdn.myledger-img.example/logo.png"], source="src")
    # A short brand name counts only as a whole word of the host: zoom-join.example, not zoomgroup.example.
    assert "DISPLAY_NAME_BRAND_HOST" in await _scan_links(an, "Zoom <a@firm.example>", ["https://zoom-join.example/j/1"])
    assert "DISPLAY_NAME_BRAND_HOST" not in await _scan_links(an, "Zoom <a@firm.example>", ["https://zoomgroup.example/"])
    # The link checks found a host imitating Ledger already: that finding says it, once.
    prior = [Finding("URL_BRAND_IN_HOST", 3.0, "link to updates-ledger.com", "urls", data={"lookalike": "updates-ledger.com", "brand": "Ledger"})]
    assert "DISPLAY_NAME_BRAND_HOST" not in await _scan_links(an, "Ledger <a@firm.example>", ["https://send.updates-ledger.com/"], prior=prior)


async def test_a_brand_claimed_from_elsewhere_on_a_lure(settings: Settings) -> None:
    """"Trust Wallet" from a stranger's domain asking to verify the wallet through a link: phishing.
    The brand's own domain, a lure without a brand, a brand without a lure, and a brand's mail sent
    through a provider whose every link (or redirect target) is the brand's own are not."""
    an = ImpersonationAnalyzer(AnalyzerEnv(settings=settings))
    lure = [Finding("CREDENTIAL_LURE_WITH_LINK", 3.0, "verify your account with a link", "lexicon")]
    got = await _scan_links(an, "Trust Wallet Support <claudia@itpro.example>", ["https://secure-portal.example/verify"], prior=lure)
    f = got["BRAND_NAME_WITH_LURE"]
    assert f.score == 2.5 and f.data == {"brand": "Trust Wallet", "lure": "CREDENTIAL_LURE_WITH_LINK"}
    assert "'Trust Wallet' on mail from itpro.example" in f.evidence
    qr = [Finding("DELIVERY_LURE_WITH_QR", 3.0, "parcel held, scan the code", "lexicon")]
    assert "BRAND_NAME_WITH_LURE" in await _scan_links(an, "DHL Express <noreply@parcel-notice.example>", [], prior=qr)
    # The callback lure asks the reader to call about a charge; it has no link by definition.
    call = [Finding("CALLBACK_LURE_WITH_PHONE", 4.0, "a charge to dispute, a number and no link", "lexicon")]
    got = await _scan_links(an, "Norton Membership <renewals@billing-notice.example>", [], prior=call)
    assert got["BRAND_NAME_WITH_LURE"].data == {"brand": "Norton", "lure": "CALLBACK_LURE_WITH_PHONE"}
    # A lure the brand's name does not go with, or no lure at all.
    other = [Finding("GAMBLING_WITH_LINK", 2.5, "free spins with a link", "lexicon")]
    assert "BRAND_NAME_WITH_LURE" not in await _scan_links(an, "Trust Wallet <a@itpro.example>", ["https://spins.example/"], prior=other)
    assert "BRAND_NAME_WITH_LURE" not in await _scan_links(an, "Trust Wallet <a@itpro.example>", ["https://secure-portal.example/"])
    # The brand's own domain, and no brand.
    assert await _scan_links(an, "Trust Wallet <support@trustwallet.com>", ["https://secure-portal.example/"], prior=lure) == {}
    assert "BRAND_NAME_WITH_LURE" not in await _scan_links(an, "Account Desk <a@itpro.example>", ["https://secure-portal.example/"], prior=lure)
    # Sent through a provider, every link to the brand's own sites, directly, through a redirect's
    # target or on a country site; one link elsewhere is enough.
    docusign = "DocuSign via Sign <notifications@apex-legal.example>"
    for links in (["https://na3.docusign.net/Signing/EmailStart.aspx?a=4c1d"],
                  ["https://click.esp.example/r?url=https%3A%2F%2Fwww.docusign.com%2Fsign"],
                  ["https://www.docusign.net/a", "https://www.docusign.com/b"]):
        assert "BRAND_NAME_WITH_LURE" not in await _scan_links(an, docusign, links, prior=lure), links
    assert "BRAND_NAME_WITH_LURE" in await _scan_links(an, docusign, ["https://na3.docusign.net/a", "https://docs-review.example/a"], prior=lure)
    assert "BRAND_NAME_WITH_LURE" not in await _scan_links(an, "PayPal <service@mailer.example>", ["https://www.paypal.de/signin"], prior=lure)


def test_every_lure_the_brand_checks_read_is_a_lexicon_combination() -> None:
    """A misspelt name would never fire, silently; and a lure combination added later must be
    placed on purpose: read by the brand check and the two throwaway rules, or (an offer) by the
    throwaway-sender and offer rules, or by neither."""
    from mailmoat.analyzers.impersonation import _ACT_LURES, _BRAND_LURES
    from mailmoat.analyzers.lexicon import LexiconAnalyzer, load_builtin
    from mailmoat.rules import BUILTIN_DIR, load_rule

    assert _BRAND_LURES - {s.name for s in LexiconAnalyzer.symbols} == set()
    # The brand check also reads the one lure that asks for a call rather than a click.
    callback = {c.symbol for c in load_builtin().combos if c.needs == "phone" and c.lexicon == "LEXICON_CALLBACK"}
    assert callback == _BRAND_LURES - _ACT_LURES
    with_link_or_code = {c.symbol for c in load_builtin().combos if c.needs in ("link", "qr")}
    # Offers, not impersonation: a brand's name beside them proves nothing more; from a
    # throwaway sender they are lures all the same. "Scan the code" alone asks nothing in particular.
    offers, neither = {"GAMBLING_WITH_LINK", "ADULT_WITH_LINK", "PHARMA_WITH_LINK", "LOANS_WITH_LINK", "LEAD_GEN_WITH_LINK"}, {"QR_LURE_WITH_QR"}
    assert with_link_or_code == _ACT_LURES | offers | neither
    rule = load_rule(BUILTIN_DIR / "impersonation_lure_from_throwaway_sender.yml")
    named = {n for n in with_link_or_code if f'"{n}"' in rule.expression}
    assert named == _ACT_LURES | offers
    # The lure whose link leads to a throwaway host reads every act lure that has a link.
    rule = load_rule(BUILTIN_DIR / "lure_link_to_throwaway_host.yml")
    named = {n for n in with_link_or_code if f'"{n}"' in rule.expression}
    assert named == {n for n in _ACT_LURES if n.endswith("_WITH_LINK")}
    # And the offer whose link leads there reads every offer: spam, not phishing.
    rule = load_rule(BUILTIN_DIR / "bulk_offer_link_to_throwaway_host.yml")
    assert {n for n in with_link_or_code if f'"{n}"' in rule.expression} == offers


async def test_a_brand_of_two_or_three_capitals_is_claimed_as_written(settings: Settings) -> None:
    """"DHL Express" or "IRS Refund Dept" from elsewhere claims the brand; "Follow-ups", "Irs Travel",
    a name all in capitals with other words in it, and the DMV (every state has one) do not."""
    an = ImpersonationAnalyzer(AnalyzerEnv(settings=settings))
    for display, brand in (("DHL Express", "DHL"), ("IRS Refund Dept", "IRS"), ("DHL EXPRESS", "DHL"),
                           ("UPS", "UPS"), ("Evri Parcel Tracking", "Evri"), ("DHL快递", "DHL"), ("DHL 快递通知", "DHL")):
        assert got_brand(await _scan(an, f"{display} <noreply@parcel-notice.example>")) == brand, display
    assert await _scan(an, "DHL Express <noreply@dhl.de>") == {}
    for display in ("Follow-ups", "Irs Travel", "FOLLOW UPS TEAM", "DMV Notice", "Box Office", "Acme ANZ Events", "DBS checks for Acme"):
        assert "DISPLAY_NAME_BRAND" not in await _scan(an, f"{display} <a@firm.example>"), display
    assert got_brand(await _scan(an, "ANZ Bank <alerts@anz-secure.example>")) == "ANZ"
    assert await _scan(an, "DBS Update Service <noreply@dbs.gov.uk>") == {}  # the UK's own, under its own name


async def test_display_name_with_another_address(settings: Settings) -> None:
    an = ImpersonationAnalyzer(AnalyzerEnv(settings=settings))
    got = await _scan(an, f'"boss@{ORG}" <boss.acme@gmail.com>')
    assert f"boss@{ORG}" in got["DISPLAY_NAME_SPOOFS_INTERNAL"].evidence
    got = await _scan(an, '"support@bank.example" <x@gmail.com>')
    assert "DISPLAY_NAME_ADDRESS_MISMATCH" in got
    # Written with an invisible character after each letter, the address is still the one shown.
    hidden = "\u034f".join("donotreply@evri.example") + " ."
    assert got_shown(await _scan(an, f'"{hidden}" <delivery-mkfe9@pansion-palmyra.example>')) == "donotreply@evri.example"
    assert await _scan(an, '"x@gmail.com" <x@gmail.com>') == {}
    # The address is found where it starts, after other text too ("IT Desk it@..."); a display name
    # of 60,000 letters with no address costs a linear scan (bench/hostile_text.py).
    got = await _scan(an, '"IT Desk support@bank.example" <x@gmail.com>')
    assert "support@bank.example" in got["DISPLAY_NAME_ADDRESS_MISMATCH"].evidence
    assert "DISPLAY_NAME_ADDRESS_MISMATCH" not in await _scan(an, f'"{"a" * 60_000}" <x@gmail.com>')


async def test_reply_to(settings: Settings) -> None:
    an = ImpersonationAnalyzer(AnalyzerEnv(settings=settings))
    got = await _scan(an, "Billing <billing@vendor.example>", extra="Reply-To: pay.vendor@gmail.com\r\n")
    assert "pay.vendor@gmail.com" in got["REPLY_TO_FREEMAIL"].evidence
    got = await _scan(an, "Billing <billing@vendor.example>", extra="Reply-To: ap@other.example\r\n")
    assert "REPLY_TO_DIFFERENT_DOMAIN" in got
    got = await _scan(an, "List <l@vendor.example>", extra="Reply-To: ap@other.example\r\nList-Id: <news.vendor.example>\r\n")
    assert got == {}
    assert await _scan(an, "Billing <billing@vendor.example>", extra="Reply-To: ar@mail.vendor.example\r\n") == {}


async def test_reply_to_another_free_mailbox(settings: Settings) -> None:
    """From one free mailbox with replies to another, on the same provider too: the scammer keeps
    the answers apart from the throw-away senders. The same person's address written otherwise
    (case, +tag, Gmail's dots) and a list's own Reply-To are not that."""
    an = ImpersonationAnalyzer(AnalyzerEnv(settings=settings))
    got = await _scan(an, "Jean Smith <jeansmith2028@gmail.com>", extra="Reply-To: jeansmith2059@gmail.com\r\n")
    assert "jeansmith2059@gmail.com" in got["REPLY_TO_OTHER_FREE_MAILBOX"].evidence
    assert "REPLY_TO_DIFFERENT_DOMAIN" not in got
    got = await _scan(an, "Laurent <laurent.d@yahoo.com>", extra="Reply-To: laurent.d77@outlook.com\r\n")
    assert set(got) == {"REPLY_TO_OTHER_FREE_MAILBOX"}
    for same in ("John.Smith+news@gmail.com", "johnsmith@googlemail.com", "JOHN.SMITH@GMAIL.COM"):
        assert await _scan(an, "John <john.smith@gmail.com>", extra=f"Reply-To: {same}\r\n") == {}
    listed = await _scan(an, "Ann <ann@gmail.com>", extra="Reply-To: club@yahoo.com\r\nList-Id: <club.example>\r\n")
    assert listed == {}
    group = await _scan(an, "joyful <abc88@hotmail.com>", extra="Reply-To: OneIncomeLiving@groups.msn.com\r\n")
    assert "REPLY_TO_OTHER_FREE_MAILBOX" not in group


def _record(store: Store, addr: str, display: str, when: float) -> None:
    raw = simple(f"{display} <{addr}>" if display else addr, subject=f"note {when}")
    msg = message(raw)
    env = Envelope(mail_from=addr, rcpt_tos=[f"c@{ORG}"], received_at=when, direction=Direction.INTERNAL)
    store.record_message(env, msg, Verdict(action=Action.DELIVER, score=0.0))


async def test_internal_account_sending_as_department_it_never_used(settings: Settings, tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'h.db'}")
    old = time.time() - 10 * 86400
    for i in range(4):
        _record(store, f"alice@{ORG}", "Alice Wang", old + i)
        _record(store, f"finance@{ORG}", "财务部", old + i)
    _record(store, f"alice@{ORG}", "财务部", time.time() - 60)  # the wave's first message, minutes ago
    an = ImpersonationAnalyzer(AnalyzerEnv(settings=settings, store=store))
    assert an.history is not None
    an.history.min_history = 5
    got = await _scan(an, f"财务部 <alice@{ORG}>", direction=Direction.INTERNAL)
    f = got["INTERNAL_UNUSUAL_DISPLAY_NAME"]
    assert "Alice Wang" in f.evidence and f.data["history"] == 4
    # The real finance mailbox sends as itself: nothing.
    assert await _scan(an, f"财务部 <finance@{ORG}>", direction=Direction.INTERNAL) == {}
    # An account with no history claiming a department: a weak signal.
    got = await _scan(an, f"人事部 <bob@{ORG}>", direction=Direction.INTERNAL)
    assert got["INTERNAL_NEW_ACCOUNT_AS_DEPARTMENT"].score < 5
    # Outside-only checks do not fire on internal mail.
    assert "IMPERSONATION_DEPARTMENT" not in got
    store.close()


async def test_internal_account_sending_as_a_brand_it_never_used(settings: Settings, tmp_path: Path) -> None:
    """A stolen account's lure signed "Microsoft 365 Security"; a team mailbox that always sends
    under a product's name is its usual self, and a new account with a brand's name is left to the
    lure checks."""
    store = Store(f"sqlite:///{tmp_path / 'h.db'}")
    old = time.time() - 10 * 86400
    for i in range(4):
        _record(store, f"alice@{ORG}", "Alice Wang", old + i)
        _record(store, f"m365-team@{ORG}", "Microsoft 365 Team", old + i)
    an = ImpersonationAnalyzer(AnalyzerEnv(settings=settings, store=store))
    assert an.history is not None
    an.history.min_history = 5
    got = await _scan(an, f"Microsoft 365 Security <alice@{ORG}>", direction=Direction.INTERNAL)
    f = got["INTERNAL_UNUSUAL_DISPLAY_NAME"]
    assert f.score == 6.0 and "Alice Wang" in f.evidence and "Microsoft" in f.data["claim"]
    assert await _scan(an, f"Microsoft 365 Team <m365-team@{ORG}>", direction=Direction.INTERNAL) == {}
    assert await _scan(an, f"Microsoft 365 Security <bob@{ORG}>", direction=Direction.INTERNAL) == {}
    store.close()


async def test_internal_without_store_says_nothing(settings: Settings) -> None:
    an = ImpersonationAnalyzer(AnalyzerEnv(settings=settings))
    assert await _scan(an, f"财务部 <alice@{ORG}>", direction=Direction.INTERNAL) == {}
