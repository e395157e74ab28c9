"""Campaign-content lexicons: lure wording alone is weak, with a QR code or link it is a campaign."""

from __future__ import annotations

import pytest

from mailmoat.analyzers.base import AnalysisContext, AnalyzerEnv
from mailmoat.analyzers.lexicon import LexiconAnalyzer, LexiconError, build, load_builtin, match, phone_number
from mailmoat.config import Settings
from mailmoat.model import Address, Envelope, Finding, Message, QrCode, Url

SUBSIDY_ZH = "关于发放2025年度工资补贴的通知"
SUBSIDY_BODY = "各位同事：根据公司安排，本年度工资补贴现已开放申领，请于本周五前扫码领取，逾期视为自动放弃。财务部"


def _qr(url: str = "https://claim.example.top/s") -> QrCode:
    return QrCode(payload=url, source="inline")


def _link(url: str = "https://login.example.top/verify") -> Url:
    return Url(url=url, scheme="https", host="login.example.top", source="href")


async def _run(settings: Settings, msg: Message) -> dict[str, Finding]:
    analyzer = LexiconAnalyzer(AnalyzerEnv(settings=settings))
    ctx = AnalysisContext(message=msg, envelope=Envelope("a@example.org", ["b@example.com"]), settings=settings)
    return {f.symbol: f for f in await analyzer.analyze(ctx)}


async def test_subsidy_lure_with_qr(settings: Settings) -> None:
    msg = Message(subject=SUBSIDY_ZH, html_text=SUBSIDY_BODY, qr_codes=[_qr()])
    msg.urls.append(Url(url="https://claim.example.top/s", scheme="https", source="qr"))
    found = await _run(settings, msg)
    assert set(found) >= {"LEXICON_SUBSIDY_FRAUD", "SUBSIDY_FRAUD_WITH_QR"}
    # The QR payload is the link; it is not counted a second time as a link lure.
    assert "SUBSIDY_FRAUD_WITH_LINK" not in found
    assert "工资补贴" in found["LEXICON_SUBSIDY_FRAUD"].data["terms"]
    assert "扫码" in found["SUBSIDY_FRAUD_WITH_QR"].evidence
    assert "claim.example.top" in found["SUBSIDY_FRAUD_WITH_QR"].evidence
    assert found["SUBSIDY_FRAUD_WITH_QR"].score > found["LEXICON_SUBSIDY_FRAUD"].score


async def test_subsidy_wording_alone_is_weak(settings: Settings) -> None:
    found = await _run(settings, Message(subject=SUBSIDY_ZH, text=SUBSIDY_BODY))
    assert set(found) == {"LEXICON_SUBSIDY_FRAUD", "LEXICON_QR_LURE"}
    assert sum(f.score for f in found.values()) < 5


async def test_a_code_that_leads_nowhere_is_no_qr_lure(settings: Settings) -> None:
    # An e-invoice's QR code holds the invoice's fields, not a link: "scan to check the invoice"
    # next to it is ordinary accounts mail, while the same words with a link code are a lure.
    text = "您的增值税电子发票已开具，请查收，付款金额1,280.00元。扫描二维码可查验发票，扫码查验真伪。"
    data = QrCode(payload="01,32,,24442000000012345678,1280.00,20261123,,A1B2", source="inline")
    found = await _run(settings, Message(subject="电子发票", text=text, qr_codes=[data]))
    assert not {f for f in found if f.endswith("_WITH_QR")}, set(found)
    found = await _run(settings, Message(subject="电子发票", text=text, qr_codes=[_qr()]))
    assert {f for f in found if f.endswith("_WITH_QR")}, set(found)


async def test_links_into_the_organisation_are_no_lure_link(settings: Settings) -> None:
    # HR's own notice about social insurance and tax refunds points to the intranet; the same
    # words with a link out of the organisation are the subsidy wave.
    settings.server.domains = ["acme-corp.cn"]
    text = "2027年度社保和住房公积金缴费基数调整，个人所得税汇算清缴退税请于3月31日前登录填写，详见公司内网。"
    intranet = Url(url="https://hr.acme-corp.cn/notice", scheme="https", host="hr.acme-corp.cn", source="text")
    found = await _run(settings, Message(subject="社保基数调整通知", text=text, urls=[intranet]))
    assert "LEXICON_SUBSIDY_FRAUD" in found and "SUBSIDY_FRAUD_WITH_LINK" not in found
    outside = Url(url="https://acme-corp-hr.top/notice", scheme="https", host="acme-corp-hr.top", source="text")
    found = await _run(settings, Message(subject="社保基数调整通知", text=text, urls=[intranet, outside]))
    assert "SUBSIDY_FRAUD_WITH_LINK" in found
    # The OA server by its private address is inside the organisation's network too.
    oa = Url(url="http://10.20.1.15:8080/oa", scheme="http", host="10.20.1.15", port=8080, is_ip=True, source="text")
    found = await _run(settings, Message(subject="社保基数调整通知", text=text, urls=[oa]))
    assert "LEXICON_SUBSIDY_FRAUD" in found and "SUBSIDY_FRAUD_WITH_LINK" not in found


async def test_subsidy_lure_with_link(settings: Settings) -> None:
    msg = Message(subject="个税退税通知", text="您有一笔个人所得税退税待申领，请点击链接办理。", urls=[_link()])
    found = await _run(settings, msg)
    assert "SUBSIDY_FRAUD_WITH_LINK" in found
    assert "SUBSIDY_FRAUD_WITH_QR" not in found


async def test_spaced_out_chinese_still_matches(settings: Settings) -> None:
    msg = Message(subject="工 资 补 贴 领 取", text="请 扫 码", qr_codes=[_qr()])
    found = await _run(settings, msg)
    assert "SUBSIDY_FRAUD_WITH_QR" in found
    # Signs that Chinese never puts inside a word: 工.资.补.贴, 扫*码, 申-领.
    msg = Message(subject="工.资.补.贴 申-领", text="请 扫*码 领／取", qr_codes=[_qr()])
    assert "SUBSIDY_FRAUD_WITH_QR" in await _run(settings, msg)


def test_chinese_punctuation_still_ends_a_word() -> None:
    from mailmoat.analyzers.lexicon import normalise

    assert normalise("工资、补贴") == "工资、补贴" and normalise("工资，补贴。") == "工资,补贴。"
    assert normalise("工.资.补.贴") == normalise("工 资 补 贴") == "工资补贴"


async def test_the_lure_in_traditional_characters_matches_the_same_terms(settings: Settings) -> None:
    # 關於發放2025年度工資補貼的通知: the same wave, written in Traditional characters.
    msg = Message(
        subject="關於發放2025年度工資補貼的通知",
        html_text="各位同事：根據公司安排，本年度工資補貼現已開放申領，請於本週五前掃碼領取，逾期視為自動放棄。財務部",
        qr_codes=[_qr()],
    )
    found = await _run(settings, msg)
    assert set(found) >= {"LEXICON_SUBSIDY_FRAUD", "SUBSIDY_FRAUD_WITH_QR"}
    assert "工资补贴" in found["LEXICON_SUBSIDY_FRAUD"].data["terms"] and "扫码" in found["SUBSIDY_FRAUD_WITH_QR"].evidence
    simplified = await _run(settings, Message(subject=SUBSIDY_ZH, html_text=SUBSIDY_BODY, qr_codes=[_qr()]))
    assert found["SUBSIDY_FRAUD_WITH_QR"].score == simplified["SUBSIDY_FRAUD_WITH_QR"].score


async def test_extortion_with_a_wallet_to_pay(settings: Settings) -> None:
    text = (
        "I installed malware on your device while you were watching adult websites and recorded you "
        "through your webcam. Pay 1200 USD in bitcoin to the address below or the video goes to all "
        "your contacts. You have 48 hours.\n\nBTC address: 1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa\n"
    )
    found = await _run(settings, Message(subject="Your device has been hacked", text=text))
    assert {"LEXICON_EXTORTION", "EXTORTION_WITH_WALLET"} <= set(found)
    assert "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa" in found["EXTORTION_WITH_WALLET"].evidence
    # Held with a point to spare: a classifier leaning a little to ham (-0.1) must not release it.
    assert found["LEXICON_EXTORTION"].score + found["EXTORTION_WITH_WALLET"].score >= 11
    # The same wording with an address whose checksum fails stays the weak lexicon sign alone.
    found = await _run(settings, Message(subject="Your device has been hacked", text=text.replace("DivfNa", "DivfNb")))
    assert "LEXICON_EXTORTION" in found and "EXTORTION_WITH_WALLET" not in found
    # A donation page that names a wallet is no extortion.
    donate = Message(subject="Support our project", text="Donations welcome: 1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa. Thank you!")
    assert not await _run(settings, donate)


async def test_english_credential_lure_with_link(settings: Settings) -> None:
    msg = Message(
        subject="Action required: your password expires today",
        html_text="Dear user, verify your account within 24 hours to keep your mailbox active.",
        urls=[_link()],
    )
    found = await _run(settings, msg)
    assert {"LEXICON_CREDENTIAL", "CREDENTIAL_LURE_WITH_LINK"} <= set(found)
    assert "verify your account" in found["LEXICON_CREDENTIAL"].data["terms"]


async def test_mailbox_password_expiry_lure_in_its_usual_words(settings: Settings) -> None:
    """The mailbox-password kit never says "verify": the password "is expiring" and a button keeps it."""
    msg = Message(
        subject="MSG-PSWD notice",
        html_text=(
            'Your mailbox "user@example.org" password is expiring! A new password will be generated by the '
            "system. To keep using your current password, kindly use the button below. Keep Current Password"
        ),
        urls=[_link()],
    )
    found = await _run(settings, msg)
    assert {"LEXICON_CREDENTIAL", "CREDENTIAL_LURE_WITH_LINK"} <= set(found)
    assert {"password is expiring", "keep current password"} <= set(found["LEXICON_CREDENTIAL"].data["terms"])


async def test_english_salary_lure_with_qr(settings: Settings) -> None:
    msg = Message(
        subject="2025 Salary Adjustment",
        text="Please scan the QR code below with your phone to review your salary adjustment letter.",
        qr_codes=[_qr()],
    )
    found = await _run(settings, msg)
    assert "SUBSIDY_FRAUD_WITH_QR" in found
    assert "QR_LURE_WITH_QR" in found


async def test_ordinary_mail_is_silent(settings: Settings) -> None:
    msgs = [
        Message(subject="会议通知", text="周五下午三点在三楼会议室讨论项目进度，请准时参加。", urls=[_link("https://intranet.example.com/")]),
        Message(subject="Re: build failure", text="The password field in the login form test fails on the new branch.", urls=[_link()]),
        Message(subject="Lunch?", text="Shall we try the new noodle place on Friday?"),
    ]
    for msg in msgs:
        assert await _run(settings, msg) == {}, msg.subject


def test_whole_words_only() -> None:
    lexset = load_builtin()
    hits = match(lexset, Message(text="The invoiced passwords were verified"))
    assert all("invoice" not in h.terms and "password" not in h.terms for h in hits.values())


def test_builtin_data_is_consistent() -> None:
    lexset = load_builtin()
    names = [s.name for s in LexiconAnalyzer.symbols]
    assert len(names) == len(set(names))
    for lex in lexset.lexicons.values():
        assert lex.terms, f"{lex.symbol} has no terms"
        # A lexicon must not fire on a single weak word: its threshold needs strong terms.
        assert lex.threshold > min(lex.terms.values())
    for combo in lexset.combos:
        assert combo.lexicon in lexset.lexicons


def test_bad_data_is_a_clear_error() -> None:
    rules = {"lexicons": {"LEXICON_X": {"score": 1, "threshold": 2}}}
    with pytest.raises(LexiconError, match="unknown lexicon LEXICON_Y"):
        build(rules, {"lexicon_t.txt": "LEXICON_Y 1 foo"})
    with pytest.raises(LexiconError, match="not a number"):
        build(rules, {"lexicon_t.txt": "LEXICON_X heavy foo"})
    with pytest.raises(LexiconError, match="needs must be"):
        build({**rules, "combos": {"C": {"lexicon": "LEXICON_X", "needs": "fax", "score": 1}}}, {})
    ok = build(rules, {"lexicon_t.txt": "# comment\n\nLEXICON_X 2 multi  word term\n"})
    assert match(ok, Message(text="a Multi word\nterm here"))["LEXICON_X"].weight == 2
    with pytest.raises(LexiconError, match="act_weight are numbers"):
        build({"lexicons": {"LEXICON_X": {"score": 1, "threshold": 2, "act_weight": "heavy"}}}, {})
    with pytest.raises(LexiconError, match=r"acts \['apply'\] are none of its terms"):
        build({"lexicons": {"LEXICON_X": {"score": 1, "threshold": 2, "acts": ["apply"]}}}, {"t.txt": "LEXICON_X 2 foo"})


def test_an_act_weight_makes_every_term_that_heavy_an_act() -> None:
    rules = {"lexicons": {"LEXICON_X": {"score": 1, "threshold": 3, "act_weight": 2}}}
    lexset = build(rules, {"t.txt": "LEXICON_X 1 parcel\nLEXICON_X 1 courier\nLEXICON_X 1 tracking\nLEXICON_X 2 customs fee\n"})
    lx = lexset.lexicons["LEXICON_X"]
    nouns = match(lexset, Message(text="parcel courier tracking"))["LEXICON_X"]
    assert nouns.weight == 3 and not lx.fires(nouns)
    assert lx.fires(match(lexset, Message(text="parcel courier customs fee"))["LEXICON_X"])


async def test_pay_and_benefit_names_alone_are_no_subsidy_lure(settings: Settings) -> None:
    """Job alerts and internship postings name pay and benefits, with a link; the lure asks the
    reader to claim, apply, scan or check something. Only that makes the wording a lure."""
    advert = "财务专员 工资待遇：8000-12000元/月，年终奖，五险一金。福利：住房补贴、交通补贴、餐补。个税申报由公司办理。"
    found = await _run(settings, Message(subject="您关注的职位有更新", text=advert, urls=[_link()]))
    assert "LEXICON_SUBSIDY_FRAUD" not in found and "SUBSIDY_FRAUD_WITH_LINK" not in found
    lure = advert + "请于本周五前登录申领，逾期视为自动放弃。"
    found = await _run(settings, Message(subject="住房补贴通知", text=lure, urls=[_link()]))
    assert {"LEXICON_SUBSIDY_FRAUD", "SUBSIDY_FRAUD_WITH_LINK"} <= set(found)
    posting = "Finance Assistant Intern. Benefits: monthly salary, meal and transportation allowance, bonus."
    assert "LEXICON_SUBSIDY_FRAUD" not in await _run(settings, Message(subject="Internship", text=posting, urls=[_link()]))
    found = await _run(settings, Message(subject="Allowance", text=posting + " Claim it before the deadline.", urls=[_link()]))
    assert "SUBSIDY_FRAUD_WITH_LINK" in found
    # A term heavy enough on its own needs no act: "tax refund", 工资补贴.
    assert "LEXICON_SUBSIDY_FRAUD" in await _run(settings, Message(subject="工资补贴", text="本月工资补贴已到账。"))


@pytest.mark.parametrize(
    ("sample", "lexicon", "act"),
    [
        ("legit_courier_zh.eml", "LEXICON_DELIVERY", "因地址不详，包裹派送失败，请重新预约派送。"),
        ("legit_out_for_delivery.eml", "LEXICON_DELIVERY", "We were unable to deliver your package. Schedule a redelivery."),
        ("legit_onedrive_storage.eml", "LEXICON_SHARED_DOCUMENT", "Your manager has shared a file with you."),
        # A property bill with a code to pay by: the bill, the payment and the late fee are named.
        ("legit_property_bill_qr_zh.eml", "LEXICON_PAYMENT", "另有一张电子发票待领取，请扫码下载。"),
    ],
)
async def test_a_services_own_notice_names_things_but_asks_nothing(
    settings: Settings, sample: str, lexicon: str, act: str
) -> None:
    """A courier's, a storage service's or a landlord's notice names the package, the tracking
    number, the document, the bill and the payment, which together reach the threshold. The lure
    says the delivery failed, that somebody shared something, or has an invoice fetched; only that
    makes the same nouns a lure."""
    from pathlib import Path

    from mailmoat.parse import parse
    from tests.conftest import SAMPLES

    msg = parse((Path(SAMPLES) / sample).read_bytes(), qr=settings.qr)
    assert msg.urls, "the notice carries its link"
    stem = lexicon.removeprefix("LEXICON_")
    assert not {s for s in await _run(settings, msg) if s.startswith(lexicon) or s.startswith(stem)}
    msg.text += "\n" + act
    found = await _run(settings, msg)
    assert lexicon in found
    if msg.qr_codes:  # the property bill's code leads to a payment page
        assert f"{stem}_LURE_WITH_QR" in found


async def test_scam_and_bulk_wording(settings: Settings) -> None:
    fee = Message(
        subject="Re: COMPENSATION FUNDS",
        text="Dear Beneficiary, your compensation funds of US$2.5 million are ready; send your full name.",
    )
    assert "LEXICON_ADVANCE_FEE" in await _run(settings, fee)
    # Today's letters name no fund: a dead father's deposit, a commission for a trustworthy person.
    for text in (
        "My late father deposited USD$45.5 million before his sudden death. We want to transfer and invest "
        "it in your country; 30% is your commission. Kindly get back to me.",
        "I solicit for your assistance in a lucrative deal. Can you handle it? I await your prompt response.",
        "You are among the lucky recipients selected to receive a donation for charity work. Reply urgently.",
    ):
        assert "LEXICON_ADVANCE_FEE" in await _run(settings, Message(subject="Hello", text=text)), text
    # A charity's appeal and a fund's report use some of the same words.
    for text in (
        "Dear friend, every donation goes to our work this winter, and our foundation matches it.",
        "The fund manager's report: the sum of our holdings rose 4%. Get back to me with questions.",
    ):
        assert "LEXICON_ADVANCE_FEE" not in await _run(settings, Message(subject="Update", text=text)), text
    extortion = Message(
        subject="This is my last warning",
        text="I recorded you through your webcam. Pay 1000 USD to my bitcoin wallet within 48 hours.",
    )
    assert "LEXICON_EXTORTION" in await _run(settings, extortion)
    bulk = Message(subject="Special offer", text="100% FREE, risk free, no obligation! To be removed click here.")
    assert "LEXICON_BULK_SPAM" in await _run(settings, bulk)
    bulk_zh = Message(subject="代开发票", text="本公司可代开增值税发票，优惠价，详情请联系电话。如不想再收到此类邮件请回复。")
    assert "LEXICON_BULK_SPAM" in await _run(settings, bulk_zh)
    # A normal newsletter footer alone stays below the threshold.
    footer = Message(subject="Weekly digest", text="Here are this week's posts. Unsubscribe at any time.")
    assert await _run(settings, footer) == {}


SPAM_TYPES = [
    # (lexicon, a message of that kind, ordinary mail that uses some of the same words)
    (
        "LEXICON_PHARMA",
        Message(subject="Cheap meds", text="Viagra and Cialis from our online pharmacy, no prescription needed."),
        Message(subject="Your prescription is ready", text="Your prescription is ready for pickup at our pharmacy."),
    ),
    (
        "LEXICON_LOANS",
        Message(subject="Lower your mortgage today", text="Bad credit? Refinance your home and consolidate your debt."),
        Message(subject="Monthly statement", text="Your loan statement is ready. Interest rates are unchanged."),
    ),
    (
        "LEXICON_LEAD_GEN",
        Message(subject="Homeowners: stop overpaying", text="Compare insurance quotes in minutes and get your free quote, no obligation."),
        # An HR benefits notice names the products and the coverage, but offers no quote.
        Message(subject="Open enrollment", text="Review your life insurance coverage and premium; eligible dependents and savings below."),
    ),
    (
        "LEXICON_LEAD_GEN",
        Message(subject="Final notice: your car warranty", text="Your auto warranty has expired. Extended warranty plans, free quote inside."),
        Message(subject="Re: used car", text="I bought an extended warranty with it; the warranty covers the gearbox."),
    ),
    (
        "LEXICON_SEO",
        Message(subject="Your website", text="We put you on the first page of Google: SEO services, targeted traffic."),
        Message(subject="Weekly report", text="Traffic to your website rose 4% this week; top pages by ranking below."),
    ),
    (
        "LEXICON_SEO",
        Message(subject="Attendee list", text="Would you be interested in the attendee list of the Expo? 12,000 verified contacts, "
                "decision makers with their email addresses."),
        Message(subject="Expo badges", text="The attendee list is final; your badge and the hall map are attached."),
    ),
    (
        "LEXICON_SEO",
        Message(subject="Reach customers", text="Our email extractor and bulk email software send to 2 million email addresses a day."),
        Message(subject="New hire", text="Please add Ana to the team's email list; her email addresses are below."),
    ),
    (
        "LEXICON_ADULT",
        Message(subject="hi there", text="I'm lonely tonight, see my webcam, hot singles in your area."),
        Message(subject="Baby shower", text="We are dating the baby shower for June; adult guests welcome."),
    ),
    (
        "LEXICON_ADULT",
        Message(subject="link to my webcam you wanted", text="Horny and lonely? See my pics on my webcam."),
        Message(subject="Updated weblogs", text="New posts: Naughty Kitchen, Sexy Cars Weekly, Webcam Reviews."),
    ),
    (
        "LEXICON_PHARMA",
        Message(subject="HGH: look ten years younger", text="Human growth hormone, herbal, shipped worldwide."),
        Message(subject="Pharmacy news", text="Refill your meds online; allergy pills on sale at your pharmacy."),
    ),
    (
        "LEXICON_PHARMA",
        Message(subject="特效药", text="纯中药壮阳，无需处方，保密发货。"),
        Message(subject="药品说明", text="请按医嘱服用药品，减肥期间注意饮食。"),
    ),
    (
        "LEXICON_LOANS",
        Message(subject="急用钱？", text="无抵押贷款，低息贷款，当天放款，黑户可办。"),
        Message(subject="房贷利息调整通知", text="您的贷款利息将按新的基准利率调整。"),
    ),
    (
        "LEXICON_SEO",
        Message(subject="网站推广", text="专业百度排名、关键词排名，首页排名不上不收费。"),
        Message(subject="周报", text="本周官网流量上升，搜索排名稳定。"),
    ),
    (
        "LEXICON_SEO",
        Message(subject="GOOGLE推广-我们很优惠！", text="Google推广，让您的企业出现在搜索引擎首页推广位置，排名靠前。"),
        Message(subject="调研", text="我们用搜索引擎查了竞品的排名。"),
    ),
    (
        "LEXICON_ADULT",
        Message(subject="同城交友", text="寂寞吗？同城交友，视频聊天，约炮。"),
        Message(subject="年会", text="年会有美女主持，节目精彩激情。"),
    ),
    (
        "LEXICON_JOB_SCAM",
        Message(subject="Part-time job opportunity", text="Simple online tasks, no experience required, daily salary paid daily."),
        # A real opening names the work; it does not pay for "tasks" by the day (flexible hours are ordinary).
        Message(subject="We are hiring", text="Senior engineer, flexible hours, see the job opportunity on our careers page."),
    ),
    (
        "LEXICON_JOB_SCAM",
        Message(subject="招聘兼职", text="手机兼职，做任务点赞，工资日结，无需经验。"),
        Message(subject="实习招聘", text="我部招聘暑期实习生，兼职亦可，详见附件。"),
    ),
    (
        "LEXICON_GAMBLING",
        Message(subject="200 FREE SPINS waiting", text="Claim your no deposit bonus at our online casino today."),
        Message(subject="Weekend trip", text="We visited the casino, won a small jackpot at the slots and had dinner."),
    ),
    (
        "LEXICON_GAMBLING",
        Message(subject="首存送彩金", text="真人娱乐、百家乐、体育投注，注册送彩金，每日返水。"),
        # News of a gambling-management degree names the trade, not an offer (a TREC ham message).
        Message(subject="北大欲招收博彩管理专业硕士研究生", text="该专业研究博彩业管理，与彩票和赌博问题的社会影响。"),
    ),
]


async def test_gambling_offer_with_a_link_is_a_campaign(settings: Settings) -> None:
    """A casino's offer fires the lexicon alone; with a link to claim it, GAMBLING_WITH_LINK too."""
    text = "Your welcome bonus is ready: 100 free spins and a 300% deposit bonus. Withdraw your winnings any time."
    found = await _run(settings, Message(subject="Your bonus is waiting", text=text))
    assert "LEXICON_GAMBLING" in found and "GAMBLING_WITH_LINK" not in found
    found = await _run(settings, Message(subject="Your bonus is waiting", text=text, urls=[_link()]))
    assert {"LEXICON_GAMBLING", "GAMBLING_WITH_LINK"} <= set(found)


async def test_the_display_name_is_read_like_the_subject(settings: Settings) -> None:
    """Spam puts its pitch in the sender's name too ("Claim Your Free Spins"): it counts."""
    text = "Your account is ready. Make your first deposit today and play."
    assert "LEXICON_GAMBLING" not in await _run(settings, Message(subject="Welcome", text=text))
    shown = Message(subject="Welcome", text=text, from_=Address("Claim Your 200 Free Spins", "promo@mailer.example"))
    assert "LEXICON_GAMBLING" in await _run(settings, shown)


async def test_campaign_keeps_its_score_beside_the_capped_content_heuristics(settings: Settings) -> None:
    """A subsidy lure with a QR code from outside, no department name: held by the campaign score.

    The content heuristics and lure wording alone are capped together (policy.group_caps.content);
    a campaign combination (wording + QR code or link) is its own group and keeps its full score.
    """
    from email.message import EmailMessage

    from mailmoat.model import Action
    from mailmoat.scanner import Scanner
    from tests.support.qrgen import png_bytes, qr_image

    m = EmailMessage()
    m["From"] = "Notice <notice@pay-notice.example>"
    m["To"] = "staff@acme-corp.cn"
    m["Subject"] = SUBSIDY_ZH + "！！"  # "!" in the subject: a content heuristic fires too
    m["Date"] = "Mon, 02 Nov 2026 10:00:00 +0000"
    m["Message-ID"] = "<wave-1@pay-notice.example>"
    m.set_content(SUBSIDY_BODY)
    m.add_attachment(png_bytes(qr_image("https://claim.example.top/s")), maintype="image", subtype="png", filename="code.png")
    settings.server.domains = ["acme-corp.cn"]
    env = Envelope("notice@pay-notice.example", ["staff@acme-corp.cn"])
    verdict = (await Scanner(settings).scan(m.as_bytes(), env)).verdict
    scores = {f.symbol: f.score for f in verdict.findings}
    assert scores["SUBSIDY_FRAUD_WITH_QR"] == 7.0
    assert "CONTENT_SUBJECT_EXCLAIM" in scores
    assert sum(f.score for f in verdict.findings if f.group == "content") <= settings.policy.group_caps["content"] + 1e-9
    assert verdict.action.severity >= Action.QUARANTINE.severity, scores


# (lexicon, an English lure with a link and a term it must name, a Chinese lure sent with a QR
# code, an ordinary message on the same topic that must stay silent)
WAVES = {
    "LEXICON_DELIVERY": (
        Message(
            subject="Delivery Attempt Failed - Please Schedule a Redelivery",
            html_text="We were unable to deliver your package today. Confirm your delivery address and pay the $1.99 redelivery fee.",
            urls=[_link("https://redelivery.example.top/track")],
        ),
        "schedule a redelivery",
        Message(subject="您的包裹派送失败", text="因地址不详，您的快递无法派送，请扫码补缴运费并预约派送。", qr_codes=[_qr()]),
        Message(
            subject="Your order has shipped",
            html_text="Good news: your package is out for delivery today. Tracking number 1Z999AA10123456784.",
            urls=[_link("https://shop.example.com/orders/1")],
        ),
    ),
    "LEXICON_CRYPTO": (
        Message(
            subject="Action needed: synchronize your wallet",
            html_text="Your Ledger wallet must be re-validated. Connect your wallet and enter your recovery phrase to keep access.",
            urls=[_link("https://ledger-sync.example.top/")],
        ),
        "recovery phrase",
        Message(subject="空投领取通知", text="恭喜获得代币空投，请扫码授权钱包领取空投。", qr_codes=[_qr()]),
        # Talking about crypto is not a lure: no wording that asks for the wallet or its phrase.
        Message(
            subject="Reading list",
            text="An article on how blockchain tokens are taxed, and one on cryptocurrency regulation.",
            urls=[_link("https://news.example.com/a")],
        ),
    ),
}


@pytest.mark.parametrize("lexicon", sorted(WAVES))
async def test_lure_waves_with_link_and_qr_and_an_ordinary_message(settings: Settings, lexicon: str) -> None:
    lure, term, lure_zh, ordinary = WAVES[lexicon]
    stem = lexicon.removeprefix("LEXICON_")
    found = await _run(settings, lure)
    assert {lexicon, f"{stem}_LURE_WITH_LINK"} <= set(found)
    assert term in found[lexicon].data["terms"]
    assert f"{stem}_LURE_WITH_QR" in await _run(settings, lure_zh)
    assert await _run(settings, ordinary) == {}


def test_phone_numbers() -> None:
    for text, number in [
        ("please call +1 (808) 555-0143 today", "+1 (808) 555-0143"),
        ("客服热线 400-820-5555，", "400-820-5555"),
        ("手机 13800138000 联系", "13800138000"),
        ("call 0755-8888 1234 ext. 5", "0755-8888 1234"),
        # Chinese numbers dialled with the trunk 0: a Beijing line, a mobile from another city
        ("电话:01065123456", "01065123456"),
        ("联系电话:013826588844(24小时)", "013826588844"),
        # Written straight after Chinese words, and two numbers side by side
        ("联系人张诗杰13318787770欢迎来电", "13318787770"),
        ("详情请电: 013420942588  0755-81547669", "013420942588"),
        ("电话：１３８００１３８０００", "13800138000"),
    ]:
        assert phone_number(text) == number, text
    for text in ("on 2026-11-23 09:00", "order 12345678901234567890", "INV-2026-1187", "1Z999AA10123456784", "pay $499.99", "ref 0012345678901234"):
        assert phone_number(text) is None, text


async def test_callback_phishing_gives_a_number_and_no_link(settings: Settings) -> None:
    text = (
        "Thank you for renewing your Total Protection plan. Your account has been charged $499.99. "
        "If you did not authorize this renewal or want a refund, call our billing department at +1 (808) 555-0143."
    )
    found = await _run(settings, Message(subject="Your order has been processed", text=text))
    assert "CALLBACK_LURE_WITH_PHONE" in found and "+1 (808) 555-0143" in found["CALLBACK_LURE_WITH_PHONE"].evidence
    # A real vendor's renewal receipt links to the account page: no callback lure.
    receipt = Message(subject="Your subscription has been renewed", text=text, urls=[_link("https://account.vendor.example/billing")])
    assert "CALLBACK_LURE_WITH_PHONE" not in await _run(settings, receipt)
    # 自动续费 scam in Chinese.
    zh = "您的会员已自动续费，已成功扣款298元。如非本人操作，请致电 400-123-4567 申请退款。"
    assert "CALLBACK_LURE_WITH_PHONE" in await _run(settings, Message(subject="扣款通知", text=zh))
    # A one-line plain part does not hide the number the HTML gives the reader.
    stub = Message(subject="Your order has been processed", text="The HTML did not load correctly.", html_text=text)
    assert "CALLBACK_LURE_WITH_PHONE" in await _run(settings, stub)


async def test_callback_phishing_in_the_words_of_todays_kits(settings: Settings) -> None:
    """Fake renewals and purchases name a support line and ask the reader to call if it was not them."""
    renewal = (
        "PayPal Transaction Record. Customer Service Phone Line: 1 865 299-0651. This message confirms "
        "your upcoming automatic renewal. Note that this membership will automatically renew each year "
        "unless canceled 48 hours before the renewal date."
    )
    found = await _run(settings, Message(subject="Confirmation: your purchase has been processed", text=renewal))
    assert "CALLBACK_LURE_WITH_PHONE" in found and "1 865 299-0651" in found["CALLBACK_LURE_WITH_PHONE"].evidence
    order = "Thanks for trusting us. Your order confirmation is #KH9OMC4Q. Support Contact: +1 (856) 379-7940. If you do not recognize this charge, give us a call."
    assert "CALLBACK_LURE_WITH_PHONE" in await _run(settings, Message(subject="Order received", text=order))
    # Brazil's bank wave: a purchase "under review", call the security line if it was not you.
    pt = "Nubank: Compra em análise no valor de R$1.499,99. Caso não reconheça, ligue para área de segurança: 0800-323-5054."
    assert "CALLBACK_LURE_WITH_PHONE" in await _run(settings, Message(subject="Transação pendente", text=pt))
    # A shop's confirmation that only gives its number, without a charge to dispute, is no lure.
    shop = "Order confirmation: 2 x garden chairs, delivery on Friday. Questions? Call us on 0161 496 0000."
    assert "LEXICON_CALLBACK" not in await _run(settings, Message(subject="Your order", text=shop))


async def test_a_job_scam_that_moves_the_talk_to_a_phone(settings: Settings) -> None:
    """Task scams ask the reader to message a number; with no link, JOB_SCAM_WITH_PHONE fires too."""
    text = "Earn up to $500 per day with simple tasks from your phone. No experience needed. WhatsApp +1 415 555 0134."
    found = await _run(settings, Message(subject="Remote job opportunity", text=text))
    assert {"LEXICON_JOB_SCAM", "JOB_SCAM_WITH_PHONE"} <= set(found)
    found = await _run(settings, Message(subject="Remote job opportunity", text=text, urls=[_link()]))
    assert "LEXICON_JOB_SCAM" in found and "JOB_SCAM_WITH_PHONE" not in found


async def test_invoices_offered_for_sale_with_a_number_to_call(settings: Settings) -> None:
    """代开发票: a company's surplus invoices sold at a few tax points, "pay after checking". The
    tax office's notice that individuals may have an invoice issued names the invoice and the tax,
    never a price, and stays silent even with its hotline."""
    sale = (
        "贵公司负责人（经理财务）您好：我公司因进项较多，完成不了每月销售额度，现有余额发票可以优惠代开，"
        "普通发票1.5%左右的税点，增值税发票及海关缴款书6%。可验证后付款。联系人：王先生 手机：13926527252"
    )
    found = await _run(settings, Message(subject="优惠代开发票", text=sale))
    assert {"LEXICON_INVOICE_FRAUD", "INVOICE_FRAUD_WITH_PHONE"} <= set(found)
    assert "13926527252" in found["INVOICE_FRAUD_WITH_PHONE"].evidence
    # Traditional characters are read as Simplified.
    big5 = "本公司有多餘的發票可以低點向貴公司代開，稅點優惠，驗證後付款。電話：0755-81577859"
    assert "INVOICE_FRAUD_WITH_PHONE" in await _run(settings, Message(subject="項目合作", text=big5))
    # The trade's other words: a surplus "issued outward", points on offer, pay once satisfied;
    # and the number written straight after the name.
    for other in (
        "贵公司负责人您好！本公司有各种发票向外代开，点数从优，如有需要欢迎来电垂询！联系人张先生13539482666",
        "我集团现有多余专用发票可以优惠代开（先用票满意再付款），贵公司如有需要请来电：020-80986821",
        "现有部分结余发票可以代开，可先验票，欢迎来电洽谈！详情请电： 013420942588  0755-81547669",
        # Issued "for your company": no tax office issues invoices for the reader's company.
        "我公司现有以下发票可为贵公司代开：国税普通商品销售发票，地税广告发票。如有需要请联系陈先生：１３９２８４９２７３２",
    ):
        assert "INVOICE_FRAUD_WITH_PHONE" in await _run(settings, Message(subject="业务洽谈", text=other)), other
    notice = (
        "各位同事：个人取得劳务报酬，需持身份证到税务局代开发票。小规模纳税人可申请代开增值税专用发票，"
        "购买方凭票抵扣进项税额，税率按规定执行。如有疑问请致电财务部 010-6512-3456。"
    )
    assert not {"LEXICON_INVOICE_FRAUD", "INVOICE_FRAUD_WITH_PHONE"} & set(
        await _run(settings, Message(subject="关于代开发票的通知", text=notice))
    )
    # An accounting firm lists what it does, tax planning among it: no surplus, no points, no price.
    firm = "本所提供代理记账、税务登记、协助到税务局代开发票、合理避税筹划等服务，咨询电话：020-8888-6666"
    assert not {"LEXICON_INVOICE_FRAUD", "INVOICE_FRAUD_WITH_PHONE"} & set(
        await _run(settings, Message(subject="财税服务", text=firm))
    )


# Lures of today's waves, most in the European languages that 40% of the phishing corpus is
# written in, each beside ordinary mail that uses the same words: a shop's raffle, a training
# provider's CPF course, a bank statement, a courier's notice, a news story.
TODAYS_LURES = [
    (
        "LEXICON_GAMBLING",
        Message(subject="🔥 200 Freispiele warten auf dich!", text="Hol dir 200 Gratis-Spins – keine Einzahlung erforderlich!"),
        Message(subject="Reisebericht", text="Wir waren im Casino in Baden-Baden, ein schöner Abend mit Roulette."),
    ),
    (
        "LEXICON_PRIZE",
        Message(
            subject="Wir gratulieren Ihnen recht herzlich",
            text="Sie wurden ausgewählt! Ihr 500 € Einkaufsgutschein wartet. Um Ihren Anspruch geltend zu machen, nehmen Sie an der Umfrage teil.",
        ),
        # A shop's own raffle: a voucher, a draw and a chance to win, but nobody was "chosen".
        Message(
            subject="Unser Adventsgewinnspiel",
            text="Gewinnen Sie einen von drei Gutscheinen im Wert von 50 €. Herzlichen Glückwunsch an die Gewinner des Novembers!",
        ),
    ),
    (
        "LEXICON_PRIZE",
        Message(subject="Gefeliciteerd!", text="U bent geselecteerd: vul onze enquête in en maak kans op een cadeaukaart van €250."),
        Message(subject="Nieuwsbrief", text="De winnaar van onze fotowedstrijd ontvangt een cadeaukaart."),
    ),
    (
        "LEXICON_SUBSIDY_FRAUD",
        # Accents dropped, as the lure wrote them.
        Message(subject="Dernier rappel concernant votre CPF", text="Vos droits CPF expirent : verifiez votre solde CPF avant le 31."),
        # A training provider's course: the entitlement named, nothing about to expire.
        Message(subject="Nos formations", text="Financez votre formation avec votre compte personnel de formation (CPF) et vos droits acquis."),
    ),
    (
        "LEXICON_SUBSIDY_FRAUD",
        Message(subject="Receita Federal: restituição do IRPF liberada", text="Voce possui valores a receber. Solicite a restituicao."),
        Message(subject="Informe de rendimentos", text="Seu informe para a declaração do imposto de renda está disponível."),
    ),
    (
        "LEXICON_CREDENTIAL",
        Message(subject="Sua conta foi bloqueada", text="Detectamos um novo acesso suspeito. Confirme seus dados em 24 horas."),
        Message(subject="Extrato mensal", text="Seu extrato da conta está disponível no aplicativo."),
    ),
    (
        "LEXICON_DELIVERY",
        Message(subject="Zustellung fehlgeschlagen", text="Ihr Paket konnte nicht zugestellt werden. Bitte zahlen Sie die Zollgebühr."),
        Message(subject="Ihre Sendung ist unterwegs", text="Ihr Paket wird morgen zugestellt. Sendungsverfolgung in der App."),
    ),
    (
        "LEXICON_LEGAL_THREAT",
        Message(subject="Intimacao judicial – confira seus dados", text="Notificação extrajudicial: regularize o processo judicial hoje."),
        Message(subject="Notícias", text="O tribunal julgou o processo do município; a multa foi mantida."),
    ),
    (
        "LEXICON_LEGAL_THREAT",
        Message(subject="Detran: CNH em processo de suspensão", text="Infração de trânsito não contestada. Multas pendentes: regularize hoje."),
        Message(subject="Renovação da CNH", text="Agende a renovação da sua carteira nacional de habilitação no Detran."),
    ),
    (
        "LEXICON_LEGAL_THREAT",
        Message(subject="Final notice: unpaid toll", text="Your toll balance is overdue. Legal action will be taken."),
        Message(subject="Court report", text="The court heard the lawsuit today; the case number is on the docket."),
    ),
    (
        "LEXICON_SUBSIDY_FRAUD",
        Message(subject="Mise à jour CPF 2026", text="Une vérification simple pour sécuriser vos droits. Vos droits CPF 2026 sont disponibles."),
        Message(subject="Nos formations", text="Utilisez vos droits CPF sur le compte personnel de formation."),
    ),
    (
        "LEXICON_ADULT",
        Message(subject="Sex Dating", text="Hot women near you are looking for a lover tonight."),
        Message(subject="Team dinner", text="Dating back to 1990, the restaurant is near you."),
    ),
]


@pytest.mark.parametrize(("lexicon", "spam", "ordinary"), SPAM_TYPES + TODAYS_LURES)
async def test_spam_types(settings: Settings, lexicon: str, spam: Message, ordinary: Message) -> None:
    """Pills, loans, search-engine selling, adult solicitation, casino offers, and today's lures in
    six languages: the kind fires, everyday use of the same words does not."""
    found = await _run(settings, spam)
    assert lexicon in found and found[lexicon].score > 0, found
    assert lexicon not in await _run(settings, ordinary)


async def test_prize_lure_with_a_link_is_a_campaign(settings: Settings) -> None:
    """Told they were chosen and sent to claim it: PRIZE_WITH_LINK. A newsletter's survey with a
    gift-card draw names the same things without telling anyone they won: nothing fires."""
    lure = Message(subject="Congratulations!", text="You have been selected to receive a mystery box. Claim your reward:", urls=[_link()])
    assert {"LEXICON_PRIZE", "PRIZE_WITH_LINK"} <= set(await _run(settings, lure))
    survey = Message(
        subject="How did we do?",
        text="Take our short survey for a chance to win a $100 gift card. Congratulations to last month's winner!",
        urls=[_link()],
    )
    assert not {"LEXICON_PRIZE", "PRIZE_WITH_LINK"} & set(await _run(settings, survey))


def test_accents_are_read_bare() -> None:
    from mailmoat.analyzers.lexicon import normalise

    assert normalise("Intimação ELETRÔNICA: Sie wurden AUSGEWÄHLT") == "intimacao eletronica: sie wurden ausgewahlt"
    # Kana, Hangul and Chinese keep their marks and characters.
    assert normalise("がぎ 한국어 工资补贴") == "がぎ 한국어 工资补贴"


def test_a_term_listed_twice_is_a_clear_error() -> None:
    rules = {"lexicons": {"LEXICON_X": {"score": 1, "threshold": 2}}}
    with pytest.raises(LexiconError, match="already in LEXICON_X"):
        build(rules, {"lexicon_a.txt": "LEXICON_X 2 prêmio", "lexicon_b.txt": "LEXICON_X 1 premio"})


async def test_security_scare_with_a_link(settings: Settings) -> None:
    """A fake antivirus renewal ("your protection has expired", "infected with 98 viruses") with a
    link fires SECURITY_SCARE_WITH_LINK; the vendor's own reminder that a subscription ends soon
    does not reach the threshold."""
    lure = Message(
        subject="Ihr McAfee-Abonnement ist abgelaufen!",
        text="Your computer is infected with 98 viruses. Renew immediately:",
        urls=[_link()],
    )
    assert {"LEXICON_SECURITY_SCARE", "SECURITY_SCARE_WITH_LINK"} <= set(await _run(settings, lure))
    reminder = Message(
        subject="Your subscription renews on 12 January",
        text="Your antivirus subscription renews automatically. Renew now to keep your price.",
        urls=[_link()],
    )
    assert "LEXICON_SECURITY_SCARE" not in await _run(settings, reminder)


def test_one_lexicons_phrase_does_not_hide_anothers_words() -> None:
    """Terms of different lexicons may overlap; within one lexicon a word inside a longer term
    counts once, as part of that term."""
    rules = {"lexicons": {"LEXICON_A": {"score": 1, "threshold": 1}, "LEXICON_B": {"score": 1, "threshold": 1}}}
    files = {"t.txt": "LEXICON_A 5 subscription has expired\nLEXICON_A 1 expired\nLEXICON_B 2 expired\nLEXICON_B 1 alert\n"}
    hits = match(build(rules, files), Message(subject="Security alert", text="Your subscription has expired."))
    assert hits["LEXICON_A"].terms == ["subscription has expired"] and hits["LEXICON_A"].weight == 5
    assert sorted(hits["LEXICON_B"].terms) == ["alert", "expired"] and hits["LEXICON_B"].weight == 3
    # Nor where both start at one place: the bulk lexicon's "代开发票" holds the invoice lexicon's
    # "代开", and "verify your account" holds "verify your"; "pay" is not a word of "paypal".
    files = {
        "t.txt": "LEXICON_A 4 代开发票\nLEXICON_B 4 代开\nLEXICON_A 3 verify your account\nLEXICON_B 2 verify your\n"
        "LEXICON_A 1 paypal\nLEXICON_B 1 pay\nLEXICON_A 1 发票\n"
    }
    hits = match(build(rules, files), Message(subject="代开发票", text="Please verify your account at PayPal."))
    assert sorted(hits["LEXICON_A"].terms) == ["paypal", "verify your account", "代开发票"]
    assert sorted(hits["LEXICON_B"].terms) == ["verify your", "代开"]


async def test_adult_solicitation_with_a_link_is_a_campaign(settings: Settings) -> None:
    msg = Message(subject="Sex Dating", text="I am 22, looking for a lover. Click for date:", urls=[_link()])
    assert {"LEXICON_ADULT", "ADULT_WITH_LINK"} <= set(await _run(settings, msg))


@pytest.mark.parametrize(("lexicon", "combo", "spam"), [
    ("LEXICON_PHARMA", "PHARMA_WITH_LINK", Message(subject="Cheap meds", text="Viagra and Cialis from our online pharmacy, no prescription needed.")),
    ("LEXICON_LOANS", "LOANS_WITH_LINK", Message(subject="Lower your mortgage today", text="Bad credit? Refinance your home and consolidate your debt.")),
    ("LEXICON_LOANS", "LOANS_WITH_LINK", Message(subject="元汇贷款", text="房产、汽车抵押当天下款，抵押加急贷款、二手房转按揭，手续简单费用低。")),
    ("LEXICON_LEAD_GEN", "LEAD_GEN_WITH_LINK", Message(subject="Exit your timeshare", text="Do you qualify to exit your timeshare? Free consultation.")),
])
async def test_pills_and_loans_sold_through_a_link_are_a_campaign(settings: Settings, lexicon: str, combo: str, spam: Message) -> None:
    """The same offers as the other kinds of spam: the shop or the application is behind the link."""
    assert combo not in await _run(settings, spam)
    found = await _run(settings, Message(subject=spam.subject, text=spam.text, urls=[_link()]))
    assert {lexicon, combo} <= set(found) and found[combo].score == 2.5


async def test_an_invoice_that_lists_the_sums_to_pay_is_no_loan_offer(settings: Settings) -> None:
    """以下款项 ("the following sums") holds 下款, the brokers' "paid out": only their phrases count."""
    bill = Message(subject="付款通知", text="请于月底前支付以下款项：房屋贷款月供 3,200 元，物业费 450 元。", urls=[_link()])
    assert not {"LEXICON_LOANS", "LOANS_WITH_LINK"} & set(await _run(settings, bill))


async def test_evidence_shows_the_terms_as_written(settings: Settings) -> None:
    """Matched without accents, shown with them: the analyst reads the lexicon's own word."""
    msg = Message(subject="Gluckwunsch! Sie wurden ausgewahlt", text="Ihre Belohnung wartet. Jetzt einlosen:", urls=[_link()])
    found = await _run(settings, msg)
    assert "sie wurden ausgewählt" in found["LEXICON_PRIZE"].evidence
    assert "sie wurden ausgewählt" in found["LEXICON_PRIZE"].data["terms"]
    assert "ausgewählt" in found["PRIZE_WITH_LINK"].evidence


async def test_chinese_points_lure_and_a_banks_own_reminder(settings: Settings) -> None:
    """积分即将清零 with a link to redeem is the lure; the bank's reminder that points can be
    exchanged for gifts names the points and the gifts and stays silent."""
    lure = Message(subject="您的积分即将清零", text="尊敬的用户，您的积分即将清零，请点击链接进行积分兑换，领取奖品。", urls=[_link()])
    assert {"LEXICON_PRIZE", "PRIZE_WITH_LINK"} <= set(await _run(settings, lure))
    reminder = Message(subject="信用卡积分提醒", text="您的信用卡积分可在手机银行兑换礼品，详情请登录App查看。", urls=[_link()])
    assert "LEXICON_PRIZE" not in await _run(settings, reminder)


async def test_prize_and_toll_lures_with_a_qr_code(settings: Settings) -> None:
    """A QR code to scan for the prize or to pay the toll is the combination, not the link one."""
    prize = Message(subject="恭喜您被选中", text="您的积分即将清零，请扫码领取奖品。", qr_codes=[_qr()])
    found = await _run(settings, prize)
    assert "PRIZE_WITH_QR" in found and "PRIZE_WITH_LINK" not in found
    toll = Message(subject="Final notice: unpaid toll", text="Your toll balance is overdue. Legal action will be taken. Scan to pay.", qr_codes=[_qr()])
    assert "LEGAL_THREAT_WITH_QR" in await _run(settings, toll)


async def test_a_law_firms_own_mail_is_no_legal_threat(settings: Settings) -> None:
    """Court, lawsuit, case number and a final notice reach the threshold together, but none of
    them is the reader's summons, toll or fine."""
    msg = Message(subject="Final notice: hearing moved", text="The court moved the hearing in the lawsuit, case number 21-4471.", urls=[_link()])
    assert "LEXICON_LEGAL_THREAT" not in await _run(settings, msg)


async def test_a_token_allocation_to_claim_is_a_crypto_lure(settings: Settings) -> None:
    """"Register and claim your share of XRP tokens … Token Allocation Program" asks the reader to
    act as an airdrop does; a market digest that names crypto, wallets, tokens and staking (enough
    weight to reach the threshold) asks nothing: the lexicon needs one of its acts."""
    lure = Message(
        subject="Allocation of reserved XRP starts today",
        html_text="Ripple is rewarding token holders with the Token Allocation Program. Register and claim your share of XRP tokens.",
        urls=[_link("https://xrp-allocation.example.top/")],
    )
    found = await _run(settings, lure)
    assert {"LEXICON_CRYPTO", "CRYPTO_LURE_WITH_LINK"} <= set(found)
    assert "token allocation" in found["LEXICON_CRYPTO"].data["terms"]
    digest = Message(
        subject="Markets this week",
        html_text="Bitcoin and Ethereum rose, XRP fell; a staking fund was approved, crypto lenders report to token holders, "
        "and an exchange delisted two tokens after a wallet breach.",
        urls=[_link("https://news.example.com/markets")],
    )
    assert await _run(settings, digest) == {}


async def test_an_advance_fee_letter_is_its_own_lure(settings: Settings) -> None:
    """The letter asks for nothing but a reply, so no link or code pairs with its words; so many of
    them (twice the threshold) are the lure. A charity's appeal names a donation and a foundation."""
    letter = (
        "Dear Beneficiary,\n\nI am the attorney to the late Mr. Walter, who died in a sudden death with his "
        "family. He left the sum of $10.5 million in a bank here, and as his next of kin you are entitled "
        "to the funds. Kindly get back to me with your full name and telephone number so the transfer can begin.\n"
    )
    found = await _run(settings, Message(subject="Urgent and confidential", text=letter))
    assert {"LEXICON_ADVANCE_FEE", "ADVANCE_FEE_LETTER"} <= set(found)
    assert found["ADVANCE_FEE_LETTER"].data["weight"] >= 12
    assert "the wording alone is the lure" in found["ADVANCE_FEE_LETTER"].evidence
    # The farmer's son whose father left a fund to move out of the country: no kin, no beneficiary.
    farm = (
        "We are therefore soliciting for\nyour assistance to help us move the fund out of the country. I will "
        "furnish you with the modalities of this transaction, which is 100% confidential. We will give you 20% "
        "of the total sum upon confirmation of the fund in any account of your choice. God bless you."
    )
    assert "ADVANCE_FEE_LETTER" in await _run(settings, Message(subject="assistance needed", text=farm))
    # Three heavy terms in a short letter are what an estate lawyer's genuine letter says too.
    estate = "We write about the pending inheritance of our late client; you are named as next of kin. Send your full name."
    found = await _run(settings, Message(subject="Estate of our client", text=estate))
    assert found["LEXICON_ADVANCE_FEE"].data["weight"] >= 12 and "ADVANCE_FEE_LETTER" not in found
    # Wording that just reaches the lexicon's threshold stays its weak sign alone.
    short = "As his next of kin you are entitled to the funds. Please reply."
    found = await _run(settings, Message(subject="Estate", text=short))
    assert "LEXICON_ADVANCE_FEE" in found and "ADVANCE_FEE_LETTER" not in found
    appeal = Message(
        subject="Our winter appeal",
        text="The foundation thanks every donor: one donation of $50 feeds a family for a week. Donate on our site.",
    )
    assert not {"LEXICON_ADVANCE_FEE", "ADVANCE_FEE_LETTER"} & set(await _run(settings, appeal))


async def test_an_advance_fee_letter_told_in_full_is_held_by_its_words(settings: Settings) -> None:
    """The whole story (the deceased, the sum, the next of kin, the transfer, the share, the
    secrecy) is far more wording than any genuine letter carries; the shorter letter keeps the
    letter's tag alone."""
    full = (
        "Dear Friend,\n\nI am the bank manager of the late Mr. Walter, who died in a plane crash with his family. "
        "He left the sum of $25.5 million in our bank and no next of kin. I seek your assistance to present you as "
        "the beneficiary, so the funds can be transferred to your account. You will have 30% of the total sum. "
        "This transaction is 100% risk free and strictly confidential. Send your full name and private telephone number."
    )
    found = await _run(settings, Message(subject="Urgent business proposal", text=full))
    assert {"ADVANCE_FEE_LETTER", "ADVANCE_FEE_LETTER_DENSE"} <= set(found)
    assert found["ADVANCE_FEE_LETTER_DENSE"].data["weight"] >= 20 and len(found["ADVANCE_FEE_LETTER_DENSE"].data["terms"]) >= 6
    assert found["ADVANCE_FEE_LETTER"].score + found["ADVANCE_FEE_LETTER_DENSE"].score + found["LEXICON_ADVANCE_FEE"].score >= 10
    shorter = "Dear Beneficiary,\n\nI am the attorney to the late Mr. Walter. As his next of kin you are entitled to the funds he left. Kindly send your full name."
    found = await _run(settings, Message(subject="Estate of Mr. Walter", text=shorter))
    assert "ADVANCE_FEE_LETTER" in found and "ADVANCE_FEE_LETTER_DENSE" not in found
    # A probate lawyer's genuine letter names the beneficiary and the sum, and stays below both.
    probate = (
        "We write about the estate of our late client, Mr. Walter. You are named in his will as a beneficiary; "
        "the sum of the bequest is held by the court. Please send your full name and a copy of your passport."
    )
    assert not {"ADVANCE_FEE_LETTER", "ADVANCE_FEE_LETTER_DENSE"} & set(await _run(settings, Message(subject="Estate of Mr. Walter", text=probate)))


def test_a_combination_of_words_alone_needs_more_than_the_threshold() -> None:
    rules = {"lexicons": {"LEXICON_X": {"score": 1, "threshold": 4}}}
    with pytest.raises(LexiconError, match="min_weight above LEXICON_X's threshold"):
        build({**rules, "combos": {"C": {"lexicon": "LEXICON_X", "needs": "words", "score": 1}}}, {})
    with pytest.raises(LexiconError, match="min_weight and min_terms are numbers"):
        build({**rules, "combos": {"C": {"lexicon": "LEXICON_X", "needs": "words", "min_weight": "lots", "score": 1}}}, {})
    with pytest.raises(LexiconError, match="belong to needs: words only"):
        build({**rules, "combos": {"C": {"lexicon": "LEXICON_X", "needs": "link", "min_terms": 3, "score": 1}}}, {})
    ok = build({**rules, "combos": {"C": {"lexicon": "LEXICON_X", "needs": "words", "min_weight": 8, "min_terms": 3, "score": 1}}}, {})
    assert (ok.combos[0].min_weight, ok.combos[0].min_terms) == (8, 3)
