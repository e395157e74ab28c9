"""Impersonation: display names claiming a department, an executive or a brand; lookalike From domains; Reply-To elsewhere."""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Iterable
from typing import ClassVar

from mailmoat.analyzers.base import AnalysisContext, AnalyzerEnv, BaseAnalyzer
from mailmoat.classify.tokens import HIDDEN
from mailmoat.model import Address, Direction, Finding, Message, Symbol
from mailmoat.parse.hanzi import simplified
from mailmoat.parse.homoglyphs import unmask
from mailmoat.parse.names import CJK_CHARS, DEPARTMENT_END, fold, joined_letters, norm, written_apart
from mailmoat.urlcheck import domains as dom
from mailmoat.urlcheck.history import History
from mailmoat.urlcheck.links import FREEMAIL, abused_tld, destination_hosts, free_hosting
from mailmoat.urlcheck.lookalike import GENERIC_LABELS, DomainCatalog, saas_tenant

# An account's usual display names are those of mail older than this (a running wave does not count).
ESTABLISHED_AFTER = 24 * 3600
MIN_ESTABLISHED = 3  # messages an account must have sent before "never used this name" means something


SYMBOLS = (
    Symbol(
        "IMPERSONATION_DEPARTMENT",
        5.0,
        "impersonation",
        "Mail from outside whose display name is an internal department",
    ),
    Symbol(
        "IMPERSONATION_DEPARTMENT_MENTION",
        1.0,
        "impersonation",
        "Mail from outside whose display name mentions an internal department",
    ),
    Symbol(
        "IMPERSONATION_EXECUTIVE",
        6.0,
        "impersonation",
        "Mail from outside whose display name is one of the organisation's executives",
    ),
    Symbol(
        "INTERNAL_UNUSUAL_DISPLAY_NAME",
        6.0,
        "impersonation",
        "An internal account sends as a department, an executive or a brand it has never sent as before",
    ),
    Symbol(
        "INTERNAL_NEW_ACCOUNT_AS_DEPARTMENT",
        2.0,
        "impersonation",
        "An internal account without sending history sends as a department or executive",
    ),
    Symbol(
        "FROM_LOOKALIKE_PROTECTED",
        8.0,
        "impersonation",
        "From domain is a lookalike of the organisation's own domain",
    ),
    Symbol(
        "FROM_SIMILAR_PROTECTED",
        3.0,
        "impersonation",
        "From domain resembles the organisation's own domain (same name elsewhere or name inside)",
    ),
    Symbol(
        "FROM_LOOKALIKE_BRAND",
        5.0,
        "impersonation",
        "From domain is a lookalike of a well-known brand's domain",
    ),
    Symbol("FROM_TYPO_BRAND", 3.5, "impersonation", "From domain is a near-miss spelling of a well-known brand's domain"),
    Symbol("FROM_FREE_HOSTING", 1.5, "impersonation", "From domain is a tenant of a free platform (e.g. *.onmicrosoft.com)"),
    Symbol("FROM_SUSPICIOUS_TLD", 1.0, "impersonation", "From domain is under a much-abused top-level domain"),
    Symbol(
        "FROM_SAAS_TENANT_UNNAMED",
        0.5,
        "impersonation",
        "From a help desk's or business software's customer subdomain (x.zendesk.com) whose name the display name does not carry",
    ),
    Symbol(
        "FROM_BRAND_IN_DOMAIN",
        2.5,
        "impersonation",
        "From domain carries a brand's name but does not belong to the brand",
    ),
    Symbol(
        "FROM_SPOOFS_PROTECTED",
        3.0,
        "impersonation",
        "Mail from outside claims a From address in the organisation's own domain",
    ),
    Symbol(
        "DISPLAY_NAME_BRAND",
        3.0,
        "impersonation",
        "Display name claims a well-known brand that the From domain does not belong to",
    ),
    Symbol(
        "DISPLAY_NAME_BRAND_DISGUISED",
        6.0,  # with DISPLAY_NAME_BRAND 9: any other sign holds it (4.0 until the twenty-ninth session)
        "impersonation",
        "Display name claims a brand only once look-alike letters, invisible characters or letters written apart are read plainly",
    ),
    Symbol(
        "DISPLAY_NAME_BRAND_HOST",
        3.0,
        "impersonation",
        "Display name claims a brand and a link goes to a host named after it that is not the brand's",
    ),
    Symbol(
        "BRAND_NAME_WITH_LURE",
        2.5,
        "impersonation",
        "Display name claims a brand the From domain does not belong to, and the text is a lure asking the reader to act through a link or QR code, or to call a number about a charge",
    ),
    Symbol(
        "DISPLAY_NAME_ADDRESS_MISMATCH",
        3.0,
        "impersonation",
        "Display name shows an email address other than the real sender",
    ),
    Symbol(
        "DISPLAY_NAME_SPOOFS_INTERNAL",
        5.0,
        "impersonation",
        "Display name shows an internal address while the mail comes from elsewhere",
    ),
    Symbol(
        "REPLY_TO_DIFFERENT_DOMAIN", 1.0, "impersonation", "Replies go to another domain than the From domain"
    ),
    Symbol(
        "REPLY_TO_FREEMAIL",
        3.0,
        "impersonation",
        "Replies go to a free mailbox while the From address is an organisation's",
    ),
    Symbol(
        "REPLY_TO_OTHER_FREE_MAILBOX",
        2.0,
        "impersonation",
        "Sent from one free mailbox, replies go to another (advance-fee and CEO-fraud senders keep the answers apart)",
    ),
)


def _mailbox(addr: str) -> str:
    """One person's mailbox however the address is written: case, "+tag" and Gmail's dots aside."""
    local, _, domain = addr.lower().rpartition("@")
    local = local.split("+", 1)[0]
    if domain in ("gmail.com", "googlemail.com"):
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}"


_ROLE_LOCALS = frozenset(
    {"finance", "hr", "payroll", "caiwu", "renshi", "xingzheng", "admin", "it", "accounting", "accounts", "people", "helpdesk"}
)
_CJK = re.compile(f"[{CJK_CHARS}]")
# Anchored at the start of a run and at most 64 characters before "@" (RFC 5321): unanchored, a
# 60,000-letter display name was tried from every position (8 s for one message).
_EMAIL_IN_NAME = re.compile(r"(?<![\w.+'-])[\w.+'-]{1,64}@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
_LATIN_FILLER = frozenset(
    [
        "team",
        "department",
        "dept",
        "office",
        "desk",
        "services",
        "service",
        "support",
        "center",
        "centre",
        "group",
        "admin",
        "administration",
        "the",
        "of",
        "and",
        "notification",
        "notifications",
        "notice",
        "no-reply",
        "noreply",
        "inc",
        "ltd",
        "llc",
        "corp",
        "co",
        "company",
        "dept.",
        "department.",
        "staff",
    ]
)
_CJK_SUFFIX = re.compile(
    r"(?:部门|部|中心|处|科|组|团队|办公室|通知|公司|集团|总部|本公司|全体|管理|服务|系统|平台)"
)
_OTHER_COMPANY = re.compile(r"有限|股份|集团|\b(?:ltd|inc|llc|corp|co)\b", re.I)


# Words of the fraud waves and of notices: a display name with one of them beside a department
# ("财务部 工资补贴", "人事部通知") is a claim, not the name of another organisation.
_NOTICE_CJK = re.compile(r"工资|薪|补贴|补助|津贴|社保|公积金|个税|退税|税务|福利|奖金|通知|公告|提醒|申领|发放|领取|紧急|重要|审核|核验")
_SET_APART = "/|｜·•"


def _rstrip_apart(text: str) -> str:
    """The text without the spaces and separators that end it (a loop, not `[\\s/|]+$`: searched
    for, that pattern is tried from every position of a long run and costs its square)."""
    i = len(text)
    while i and (text[i - 1].isspace() or text[i - 1] in _SET_APART):
        i -= 1
    return text[:i]


def _names_another_org(name: str, term: str, org_names: Iterable[str]) -> bool:
    """'华星科技 财务部', '华星科技/财务部': a name set apart before the department, that is neither
    our organisation's name, nor wording of a notice, nor a generic word such as 公司, names the
    sender's own organisation."""
    before = name[: name.find(term)]
    prefix = _rstrip_apart(before)
    if prefix == before:
        return False
    for org in org_names:
        prefix = prefix.replace(org, "")
    if _NOTICE_CJK.search(prefix):
        return False
    return len(_CJK.findall(_CJK_SUFFIX.sub("", prefix))) >= 2


# Brand names that are also words (GENERIC_LABELS) but that a sender calling itself by that word
# alone is the brand; the others ("Office", "Booking", "Outlook", "Orange") are what small firms
# and people call their own mailboxes, or what another brand's own mail is called ("Visa" from an
# embassy's visa section, "Gemini" from Google).
_SENDER_WORDS = frozenset({"office", "booking", "outlook", "orange", "aruba", "meta", "live", "trip", "visa", "gemini"})
# What a brand's mail adds to its name in a display name.
_SERVICE_WORDS = frozenset(
    {
        "team", "support", "security", "wallet", "service", "services", "billing", "notification",
        "notifications", "account", "accounts", "alert", "alerts", "official", "customer", "care", "help",
        "desk", "app", "inc", "bank", "card", "rewards", "update", "updates", "news",
        # a carrier's: "Evri Parcel Tracking", "UPS Informed Delivery"
        "delivery", "deliveries", "express", "parcel", "parcels", "shipping", "tracking", "courier", "informed",
    }
)
# Brand names of two or three capitals (DHL, UPS, IRS) are claimed only as written, in capitals and
# as a word of their own: "follow-ups" or "Irs Travel" claim nothing. Every state has a DMV, under
# its own domain, so that one claims no single brand. Firms name their regional mailboxes "Acme
# ANZ" (Australia and New Zealand), and DBS and CRA are also a UK vetting service and any credit
# reference agency: those claim their brand only alone or with service words ("ANZ Internet
# Banking" does not, "ANZ Bank" does), as brand names that are words do.
_ACRONYM = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2,3}(?![A-Za-z0-9])")
_SHARED_ACRONYMS = frozenset({"DMV"})
_AMBIGUOUS_ACRONYMS = frozenset({"ANZ", "DBS", "CRA"})
_WORD = re.compile(r"[^\W_]+")
_LATIN_WORD = re.compile(r"[A-Za-z]+")
# "Katie from Ledger": a person writing for a brand, as marketing mail signs itself.
_FROM_WORD = re.compile(r"(?<![^\W_])from(?![^\W_])")
# Brand names of plain ASCII words, and the words of a display name they are looked up by (the
# same edges as _latin_pattern: a name is never part of a longer run of letters and digits).
_PLAIN_NAME = re.compile(r"[a-z0-9]+(?: [a-z0-9]+)*")
_PLAIN_WORD = re.compile(r"[a-z0-9]+")
# A brand's name written as one word: its words run together ("TrustWallet", "MercadoPago"), or
# with a service word run on ("MetaMaskTeam", "PayPalSupport"). Only a display name's first words
# are read so (a kit's display name is short; one of 10,000 words is read as written).
_JOINED_RUNS = 12
_JOINED_MIN = 8
_JOINED_MAX = 40  # a brand's name with a service word run on is short; a run of 60,000 letters is none
_SERVICE_ENDINGS = tuple(sorted(_SERVICE_WORDS, key=len, reverse=True))  # "services" before "service"


# How people type a name: full-width letters are what Chinese input methods give. Nothing else
# is read plainly (`norm` without NFKC), so a brand found in the folded name but not in this one
# was disguised.
_FULL_WIDTH = str.maketrans({chr(c): chr(c - 0xFEE0) for c in range(0xFF01, 0xFF5F)})


def _as_typed(display: str) -> str:
    """The display name as typed: Traditional Chinese read as Simplified, full-width letters as ASCII."""
    return simplified(norm(display.translate(_FULL_WIDTH), compat=False))


def _disguises(typed: str) -> str:
    """What hides the name (`_as_typed`), for the evidence."""
    found = []
    if HIDDEN.search(typed):
        found.append("invisible characters")
    plain = HIDDEN.sub("", typed)
    compat = unicodedata.normalize("NFKC", plain)
    if compat != plain:
        found.append("styled letters")
    if unmask(compat) != compat:
        found.append("look-alike letters")
    if joined_letters(compat) != compat:
        found.append("its letters written apart")
    return ", ".join(found) or "unusual characters"


def _latin_pattern(term: str) -> re.Pattern[str]:
    return re.compile(r"(?<![a-z0-9])" + re.escape(term.lower()) + r"(?![a-z0-9])")


# The lexicon combinations of a lure that asks the reader to act through a link or a QR code:
# log in, claim, pay, release a parcel, open a document, renew, answer a summons.
_ACT_LURES = frozenset(
    {
        "CREDENTIAL_LURE_WITH_LINK",
        "CREDENTIAL_LURE_WITH_QR",
        "CRYPTO_LURE_WITH_LINK",
        "CRYPTO_LURE_WITH_QR",
        "PRIZE_WITH_LINK",
        "PRIZE_WITH_QR",
        "DELIVERY_LURE_WITH_LINK",
        "DELIVERY_LURE_WITH_QR",
        "SHARED_DOCUMENT_WITH_LINK",
        "SHARED_DOCUMENT_WITH_QR",
        "SECURITY_SCARE_WITH_LINK",
        "LEGAL_THREAT_WITH_LINK",
        "LEGAL_THREAT_WITH_QR",
        "SUBSIDY_FRAUD_WITH_LINK",
        "SUBSIDY_FRAUD_WITH_QR",
        "PAYMENT_LURE_WITH_QR",
    }
)
# What a brand claimed from elsewhere is read with: those lures, and the callback lure, which asks
# the reader to call a number about a charge (no link to follow, so nothing for the link checks).
_BRAND_LURES = _ACT_LURES | {"CALLBACK_LURE_WITH_PHONE"}
# The link checks' findings of a host that imitates a brand (analyzers/urls.py, stage 0).
_LINK_IMITATIONS = frozenset({"URL_LOOKALIKE_BRAND", "URL_TYPO_BRAND", "URL_BRAND_IN_HOST", "URL_IDN_HOMOGRAPH"})


def _names_tenant(display: str, tenant: str) -> bool:
    """The display name carries the tenant's name: "Acme Support" for acme or acmeinc."""
    label = re.sub(r"[^a-z0-9]", "", tenant.lower())
    words = re.findall(r"[a-z0-9]+", fold(display).lower())
    return bool(label) and (label in "".join(words) or any(len(w) >= 4 and w in label for w in words))


def _names(host: str, label: str) -> bool:
    """True when a host carries a brand's label: anywhere for a long label ("myledger"), as a
    whole hyphen or dot token for a short one ("zoom-join", not "zoomgroup" or "otherwise")."""
    if len(label) >= 6:
        return label in host
    return label in re.split(r"[.-]", host)


class ImpersonationAnalyzer(BaseAnalyzer):
    name: ClassVar[str] = "impersonation"
    symbols: ClassVar[tuple[Symbol, ...]] = SYMBOLS
    stage: ClassVar[int] = 1  # sees the authentication results of stage 0

    def __init__(self, env: AnalyzerEnv) -> None:
        super().__init__(env)
        s = env.settings
        self.catalog = DomainCatalog(list(s.server.domains), list(s.org.brands))
        self.departments = [fold(d) for d in s.org.departments if d.strip()]
        self.executives = [fold(e) for e in s.org.executives if e.strip()]
        self.org_names = [fold(n) for n in s.org.names if n.strip()]
        self._dept_latin = [(d, _latin_pattern(d)) for d in self.departments if not _CJK.search(d)]
        self._dept_cjk = sorted((d for d in self.departments if _CJK.search(d)), key=len, reverse=True)
        # Brand names in catalogue order (the first that a display name holds is the claim), read
        # three ways: Chinese names as substrings; plain names of ASCII words through one pass
        # over the display name's words (a name per pattern over a display name of 60,000
        # letters took 0.15 s); the few with other signs (AT&T, Disney+, Itaú) by pattern.
        self._brand_cjk: list[tuple[int, str, str]] = []
        self._brand_plain: dict[tuple[str, ...], tuple[int, str, str]] = {}
        self._brand_other: list[tuple[int, str, re.Pattern[str], str]] = []
        self._brand_acronyms: dict[str, tuple[int, str, str]] = {}
        # Names a display name claims only alone or with service words: word-like brand names
        # ("Ledger") and every acronym (for names written in capitals throughout): word -> (shown, brand).
        self._brand_alone: dict[str, tuple[str, str]] = {}
        order = 0
        for b in self.catalog.brands:
            for n in b.names:
                if len(n) < 4 and not _CJK.search(n):
                    if _ACRONYM.fullmatch(n) and n not in _SHARED_ACRONYMS:
                        order += 1
                        self._brand_acronyms.setdefault(n, (order, n, b.name))
                        self._brand_alone.setdefault(n.lower(), (n, b.name))
                    continue
                if n.lower() in GENERIC_LABELS:
                    if n.lower() not in _SENDER_WORDS:
                        word = fold(n).lower()
                        self._brand_alone[word] = (word.capitalize(), b.name)
                    continue
                order += 1
                if _CJK.search(n):
                    self._brand_cjk.append((order, fold(n), b.name))
                elif _PLAIN_NAME.fullmatch(n.lower()):
                    self._brand_plain.setdefault(tuple(n.lower().split(" ")), (order, fold(n), b.name))
                else:
                    self._brand_other.append((order, fold(n), _latin_pattern(n), b.name))
        self._brand_words_max = max((len(k) for k in self._brand_plain), default=0)
        self._brand_joined = {
            "".join(k): v for k, v in self._brand_plain.items() if len(k) > 1 and len("".join(k)) >= _JOINED_MIN
        }
        self._brand_first = frozenset(k[0] for k in self._brand_plain)
        self.history = History(env.store) if env.store is not None else None

    # -- claims ---------------------------------------------------------------------------------

    # The claims read a display name as `fold` gives it: the caller folds it once for all three.

    def department_claim(self, name: str) -> tuple[str, bool] | None:
        """(department, strong) when a folded display name claims a department; strong = it is little else."""
        low = name.lower()
        for term in self._dept_cjk:
            if term in name:
                rest = name
                for t in self._dept_cjk + self.org_names:
                    rest = rest.replace(t, "")
                core = re.findall(r"\w", _CJK_SUFFIX.sub("", rest))
                # "财务部", "公司财务部", "财务部-工资补贴" claim our department; "某某贸易有限公司/财务部"
                # is another company's own department.
                other_company = bool(_OTHER_COMPANY.search(rest)) or _names_another_org(name, term, self.org_names)
                strong = not core or (bool(DEPARTMENT_END.search(term)) and len(core) <= 4 and not other_company)
                return term, strong
        for term in self._dept_cjk:
            # No organisation writes its own department's name letter by letter: a claim that hides.
            if written_apart(term, name):
                return term, True
        for term, pat in self._dept_latin:
            if pat.search(low):
                rest = low
                for _t, p in self._dept_latin:
                    rest = p.sub(" ", rest)
                for org in self.org_names:
                    rest = rest.replace(org.lower(), " ")
                words = [w for w in re.split(r"[^\w-]+", rest) if w and w not in _LATIN_FILLER]
                return term, not words
        return None

    def executive_claim(self, name: str) -> str | None:
        """The executive a folded display name claims to be, if any."""
        low = name.lower()
        for ex in self.executives:
            e = ex.lower()
            if _CJK.search(e):
                if e.replace(" ", "") in low.replace(" ", ""):
                    return ex
            else:
                tokens = [t for t in re.split(r"[\s.,]+", e) if t]
                if tokens and all(_latin_pattern(t).search(low) for t in tokens):
                    return ex
        return None

    def brand_claim(self, name: str) -> tuple[str, str] | None:
        """(name shown, brand) when a folded display name names a well-known brand, also when
        its letters are written apart ("T E M U", "P.a.y.P.a.l")."""
        found = self._brand_claim_as_written(name)
        if found is None:
            joined = joined_letters(name)
            if joined != name:
                found = self._brand_claim_as_written(joined)
        return found

    def _brand_claim_as_written(self, name: str) -> tuple[str, str] | None:
        low = name.lower()
        hits = [next(((i, n, b) for i, n, b in self._brand_cjk if n in name), None)]
        hits.append(next(((i, n, b) for i, n, pat, b in self._brand_other if pat.search(low)), None))
        runs = [(m.start(), m.end(), m.group()) for m in _PLAIN_WORD.finditer(low)]
        for at, run in enumerate(runs):
            if run[2] not in self._brand_first:
                continue
            for k in range(1, min(self._brand_words_max, len(runs) - at) + 1):
                # A name of several words matches only as written: one space between its words
                # (or the underscore or hyphen kits write for it, "Liberty_Mutual_Team", "Trust-Wallet").
                if k > 1 and low[runs[at + k - 2][1] : runs[at + k - 1][0]] not in (" ", "_", "-"):
                    break
                hits.append(self._brand_plain.get(tuple(w for _, _, w in runs[at : at + k])))
        for _, _, word in runs[:_JOINED_RUNS]:
            if not _JOINED_MIN <= len(word) <= _JOINED_MAX:
                continue
            hits.append(self._brand_joined.get(word))
            ending = next((e for e in _SERVICE_ENDINGS if word.endswith(e)), "")
            if ending and len(word) - len(ending) >= 4:
                hits.append(self._brand_plain.get((word[: -len(ending)],)))
        if name != low.upper() or len(_LATIN_WORD.findall(name)) < 2:
            # In a name written in capitals throughout, "ING" or "UPS" may be a word like any other;
            # one Latin word beside Chinese ("DHL快递") is the name itself.
            hits.extend(
                self._brand_acronyms.get(m.group())
                for m in _ACRONYM.finditer(name)
                if m.group() not in _AMBIGUOUS_ACRONYMS
            )
        found = min((h for h in hits if h is not None), default=None)
        if found is not None:
            return found[1], found[2]
        # A brand that is also a word ("Ledger", "Chase", "Exodus") is claimed only by a display
        # name that is that word alone or with a service word ("Ledger Support"), or by someone
        # "from" it ("Katie from Ledger"); so is an acronym in a name written in capitals ("DHL
        # EXPRESS"). "General Ledger Team", "Chase Smith", "Cathy from General Ledger" and
        # "FOLLOW UPS" claim nothing.
        found_alone = self._brand_alone_claim(low)
        if found_alone is None:
            after = _FROM_WORD.split(low)
            if len(after) > 1:
                found_alone = self._brand_alone_claim(after[-1])
        return found_alone

    def _brand_alone_claim(self, low: str) -> tuple[str, str] | None:
        words: list[str] = []
        for m in _WORD.finditer(low):
            if m.group() not in _SERVICE_WORDS:
                words.append(m.group())
                if len(words) > 1:
                    return None
        return self._brand_alone.get(words[0]) if len(words) == 1 else None

    # -- analysis -------------------------------------------------------------------------------

    async def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        msg, env = ctx.message, ctx.envelope
        frm = msg.from_
        out: list[Finding] = []
        if not frm.addr:
            return out
        from_domain = frm.domain
        internal_from = bool(from_domain) and self.catalog.is_protected(from_domain)
        display = norm(frm.display)
        if env.direction == Direction.INBOUND:
            # Our own domain arriving through the MX without DMARC pass is a spoof: it earns no
            # trust for its display name (the site's own mail comes in through the relay listener).
            authenticated = any(f.symbol in ("DMARC_PASS", "AUTH_INTERNAL") for f in ctx.prior)
            out.extend(self._inbound_display(display, frm, internal_from and authenticated))
            out.extend(self._brand_host(out, msg, ctx))
            out.extend(self._brand_lure(out, msg, ctx))
            out.extend(self._from_domain(from_domain, internal_from, ctx))
            if from_domain and not internal_from:
                out.extend(self._from_platform(from_domain, display))
        elif env.direction == Direction.INTERNAL and display:
            out.extend(self._internal_display(display, frm))
        out.extend(self._display_address(display, frm, env.direction))
        out.extend(self._reply_to(msg, frm))
        return out

    def _inbound_display(self, display: str, frm: Address, internal_from: bool) -> list[Finding]:
        out: list[Finding] = []
        if not display or internal_from:
            return out
        shown = f'"{display}" <{frm.addr}>'
        name = fold(display)
        ex = self.executive_claim(name)
        if ex:
            out.append(
                self.finding(
                    "IMPERSONATION_EXECUTIVE",
                    f"{shown}: display name is executive {ex!r} but the mail comes from outside",
                    {"claim": ex},
                )
            )
        dept = self.department_claim(name)
        if dept:
            term, strong = dept
            sym = "IMPERSONATION_DEPARTMENT" if strong else "IMPERSONATION_DEPARTMENT_MENTION"
            verb = "claims" if strong else "mentions"
            out.append(
                self.finding(
                    sym,
                    f"{shown}: display name {verb} internal department {term!r} on mail from outside",
                    {"claim": term},
                )
            )
        brand = self.brand_claim(name)
        if brand:
            shown_name, bname = brand
            if not self._owned_by(frm.domain, bname):
                out.append(
                    self.finding(
                        "DISPLAY_NAME_BRAND",
                        f"{shown}: display name claims {shown_name!r} but {frm.domain} is not {bname}'s",
                        {"claim": shown_name, "brand": bname},
                    )
                )
                # `display` has been through NFKC, which reads styled letters plainly: the
                # header's own text shows how the name was written.
                typed = _as_typed(frm.display)
                if self._brand_claim_as_written(typed) is None:
                    how = _disguises(typed)
                    out.append(
                        self.finding(
                            "DISPLAY_NAME_BRAND_DISGUISED",
                            f"{shown}: display name writes {shown_name!r} with {how}",
                            {"claim": shown_name, "brand": bname, "disguise": how},
                        )
                    )
        return out

    def _brand_host(self, found: list[Finding], msg: Message, ctx: AnalysisContext) -> list[Finding]:
        """DISPLAY_NAME_BRAND_HOST: a link to a host named after the brand the display name claims.

        The link checks leave a brand whose name is a word ("Ledger", "Exodus") out of
        brand-in-name, and find others only as a whole hyphen token or a long substring: a host
        with "ledger" in it is no lure by itself. With the display name claiming that very brand
        it is: portal-myledger.com, ledger.restore-myassets.com. When the link checks already found
        a host imitating that brand, that finding says it, and this one is not given as well.
        """
        claim = next((f for f in found if f.symbol == "DISPLAY_NAME_BRAND"), None)
        if claim is None:
            return []
        bname = claim.data["brand"]
        brand = next((b for b in self.catalog.brands if b.name == bname), None)
        if brand is None:
            return []
        if any(f.symbol in _LINK_IMITATIONS and f.data.get("brand") == bname for f in ctx.prior):
            return []
        labels = {lab for lab in (dom.label_of(d) for d in brand.domains) if len(lab) >= 4}
        for u in msg.urls[:200]:
            if u.source in ("src", "css"):  # an image's host says nothing of where the reader goes
                continue
            for host in destination_hosts(u.url, u.host):
                if not host or dom.is_ip(host) or self.catalog.is_legit(host):
                    continue
                if self._brand_country_site(host, bname):
                    continue
                named = next((lab for lab in labels if _names(host, lab)), None)
                if named:
                    return [
                        self.finding(
                            "DISPLAY_NAME_BRAND_HOST",
                            f"display name claims {claim.data['claim']!r} and a link goes to {host}, "
                            f"named after {bname} but not {bname}'s ({u.url[:200]})",
                            {"brand": bname, "host": host, "url": u.url[:1000]},
                        )
                    ]
        return []

    def _brand_lure(self, found: list[Finding], msg: Message, ctx: AnalysisContext) -> list[Finding]:
        """BRAND_NAME_WITH_LURE: a brand claimed from elsewhere, on a lure that asks the reader to act
        (through a link or a QR code, or by calling a number about a charge).

        Each half is common alone: partners and resellers name brands, and lures come from
        everywhere. A brand that writes about the reader's account from a mail provider's domain
        still sends the reader to its own sites, so mail whose every link (or a redirect's target)
        is the brand's own is left to the other checks.
        """
        claim = next((f for f in found if f.symbol == "DISPLAY_NAME_BRAND"), None)
        lure = next((f for f in ctx.prior if f.symbol in _BRAND_LURES), None)
        if claim is None or lure is None:
            return []
        bname = claim.data["brand"]
        links = [u for u in msg.urls[:200] if u.source not in ("src", "css")]
        if links and all(self._leads_to_brand(u.url, u.host, bname) for u in links):
            return []
        return [
            self.finding(
                "BRAND_NAME_WITH_LURE",
                f"display name claims {claim.data['claim']!r} on mail from {msg.from_.domain}, "
                f"with a lure that asks the reader to act ({lure.symbol})",
                {"brand": bname, "lure": lure.symbol},
            )
        ]

    def _leads_to_brand(self, url: str, host: str, brand: str) -> bool:
        """True when a link's host, or the target a redirect carries, is the brand's own site."""
        return any(not dom.is_ip(h) and self._owned_by(h, brand) for h in destination_hosts(url, host))

    def _owned_by(self, domain: str, brand: str) -> bool:
        """True when a domain is the brand's own: one of its listed domains (or below one), or its
        name under another suffix (`_brand_country_site`)."""
        if not domain:
            return False
        real = self.catalog.brand_of(domain)
        return (real is not None and real.name == brand) or self._brand_country_site(domain, brand)

    def _brand_country_site(self, domain: str, brand: str) -> bool:
        """True for the brand's name under another suffix (yahoo.ca, ebay.com.cn): usually its own site."""
        label = dom.label_of(domain) if domain else ""
        return bool(label) and any(
            b.name == brand and any(dom.label_of(d) == label for d in b.domains) for b in self.catalog.brands
        )

    def _from_domain(self, from_domain: str, internal_from: bool, ctx: AnalysisContext) -> list[Finding]:
        out: list[Finding] = []
        if not from_domain:
            return out
        if internal_from:
            authenticated = any(f.symbol in ("DMARC_PASS", "AUTH_INTERNAL") for f in ctx.prior)
            if not authenticated:
                out.append(
                    self.finding(
                        "FROM_SPOOFS_PROTECTED",
                        f"From {ctx.message.from_.addr} is in the organisation's domain {from_domain}, but the mail came from outside ({ctx.envelope.peer_ip or 'unknown client'}) without DMARC pass",
                        {"domain": from_domain},
                    )
                )
            return out
        look = self.catalog.check(from_domain)
        if look is None:
            return out
        data = {"domain": from_domain, "imitates": look.target, "kind": look.kind, "brand": look.brand}
        ev = f"From domain {look.describe()}"
        if look.protected:
            strong = look.kind in ("homoglyph", "idn-homograph", "typo")
            out.append(
                self.finding("FROM_LOOKALIKE_PROTECTED" if strong else "FROM_SIMILAR_PROTECTED", ev, data)
            )
        elif look.kind in ("homoglyph", "idn-homograph"):
            out.append(self.finding("FROM_LOOKALIKE_BRAND", ev, data))
        elif look.kind == "typo":
            out.append(self.finding("FROM_TYPO_BRAND", ev, data))
        else:
            out.append(self.finding("FROM_BRAND_IN_DOMAIN", ev, data))
        return out

    def _from_platform(self, from_domain: str, display: str) -> list[Finding]:
        out: list[Finding] = []
        platform = free_hosting(from_domain)
        if platform:
            ev = f"From domain {from_domain} is a tenant of {platform}, where anyone can create a sender"
            out.append(self.finding("FROM_FREE_HOSTING", ev, {"domain": from_domain}))
        tenant = saas_tenant(from_domain)
        if tenant and not _names_tenant(display, tenant[0]):
            # A company's help desk signs with its own name (Acme Support, acme.zendesk.com); a
            # trial opened to send lures signs with someone else's.
            ev = f"From {from_domain}, the {tenant[1]} customer '{tenant[0]}', signed {display[:60]!r}"
            out.append(self.finding("FROM_SAAS_TENANT_UNNAMED", ev, {"domain": from_domain, "platform": tenant[1]}))
        tld = abused_tld(from_domain)
        if tld:
            ev = f"From domain {from_domain} is under the much-abused .{tld}"
            out.append(self.finding("FROM_SUSPICIOUS_TLD", ev, {"domain": from_domain}))
        return out

    def _internal_display(self, display: str, frm: Address) -> list[Finding]:
        name = fold(display)
        claim = self.executive_claim(name)
        if claim is None:
            dept = self.department_claim(name)
            claim = dept[0] if dept else None
        brand_only = False
        if claim is None:
            # A stolen account sends its lure as "Microsoft 365 Security" as readily as "IT Support";
            # a colleague's own mail does not, unless the account always has (a team named after
            # the product it runs), which the history below tells.
            brand = self.brand_claim(name)
            if brand is not None and not self._owned_by(frm.domain, brand[1]):
                claim, brand_only = brand[0], True
        if claim is None or self.history is None or not self.history.mature():
            return []
        local = frm.local.lower()
        past = self.history.display_names(frm.addr, before=time.time() - ESTABLISHED_AFTER)
        if past is None:
            return []
        count, names = past
        shown = f'"{display}" <{frm.addr}>'
        if display.lower() in {norm(n).lower() for n in names}:
            return []
        if count >= MIN_ESTABLISHED:
            usual = ", ".join(sorted(f'"{n}"' for n in names if n)[:3]) or "no display name"
            return [
                self.finding(
                    "INTERNAL_UNUSUAL_DISPLAY_NAME",
                    f"{shown}: internal account sends as {claim!r}, which it never used in {count} earlier messages (usually {usual})",
                    {"claim": claim, "history": count},
                )
            ]
        # Role mailboxes (finance@, hr@, caiwu@) sending as their department are normal; a brand's
        # name on a new account is left to the lure checks (a new team mailbox may be named so).
        if not brand_only and not set(re.split(r"[._+-]+", local)) & _ROLE_LOCALS:
            return [
                self.finding(
                    "INTERNAL_NEW_ACCOUNT_AS_DEPARTMENT",
                    f"{shown}: internal account with little sending history ({count} messages) sends as {claim!r}",
                    {"claim": claim, "history": count},
                )
            ]
        return []

    def _display_address(self, display: str, frm: Address, direction: Direction) -> list[Finding]:
        out: list[Finding] = []
        # Invisible characters between its letters (U+034F after each in "donotreply@evri.com") keep
        # the shown address from reading as one; the reader sees it whole.
        for shown_addr in _EMAIL_IN_NAME.findall(HIDDEN.sub("", display)):
            shown_domain = shown_addr.rpartition("@")[2].lower()
            if shown_addr.lower() == frm.addr.lower() or dom.registrable(shown_domain) == dom.registrable(
                frm.domain
            ):
                continue
            ev = f'display name "{display}" shows {shown_addr} but the sender is {frm.addr}'
            if (
                self.catalog.is_protected(shown_domain)
                and direction == Direction.INBOUND
                and not self.catalog.is_protected(frm.domain)
            ):
                out.append(self.finding("DISPLAY_NAME_SPOOFS_INTERNAL", ev, {"shown": shown_addr}))
            else:
                out.append(self.finding("DISPLAY_NAME_ADDRESS_MISMATCH", ev, {"shown": shown_addr}))
            break
        return out

    def _reply_to(self, msg: Message, frm: Address) -> list[Finding]:
        from_reg = dom.registrable(frm.domain) if frm.domain else ""
        listed = bool(msg.header("List-Id") or msg.header("List-Unsubscribe"))
        for rt in msg.reply_to:
            rdom = rt.domain
            if not rdom or not from_reg:
                continue
            rreg = dom.registrable(rdom)
            # Both addresses at a free-mail domain itself: a provider's group service
            # (OneIncomeLiving@groups.msn.com) is a list, not a person.
            free = frm.domain.lower() in FREEMAIL and rdom.lower() in FREEMAIL
            if free and not listed and _mailbox(rt.addr) != _mailbox(frm.addr):
                # Nobody's business runs on two free mailboxes; the scammer sends from throw-away
                # accounts and keeps the answers in one that lasts (jeansmith2028@gmail.com,
                # replies to jeansmith2059@gmail.com).
                ev = f"sent from the free mailbox {frm.addr} but replies go to {rt.addr}"
                return [self.finding("REPLY_TO_OTHER_FREE_MAILBOX", ev, {"reply_to": rt.addr})]
            if rreg == from_reg:
                continue
            fb, rb = self.catalog.brand_of(frm.domain), self.catalog.brand_of(rdom)
            if fb is not None and rb is not None and fb.name == rb.name:
                continue
            ev = f"From {frm.addr} but replies go to {rt.addr}"
            if rreg in FREEMAIL and from_reg not in FREEMAIL:
                return [self.finding("REPLY_TO_FREEMAIL", ev, {"reply_to": rt.addr})]
            if listed:
                continue  # lists and newsletters point replies elsewhere by design
            return [self.finding("REPLY_TO_DIFFERENT_DOMAIN", ev, {"reply_to": rt.addr})]
        return []
