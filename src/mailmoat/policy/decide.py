"""Turns findings into a Verdict: score overrides, composites, group caps, allow/deny lists, thresholds."""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from mailmoat.config import PolicySettings, PolicyThresholds
from mailmoat.model import Action, Direction, Envelope, Finding, Message, Symbol, Verdict
from mailmoat.policy.composite import CompositeSyntaxError, Predicate, compile_composite

if TYPE_CHECKING:
    from mailmoat.policy.site_lists import SiteLists

ALLOWLISTED = Symbol("ALLOWLISTED", 0.0, "policy", "Sender, sender domain or client IP is on the allow list")
DENYLISTED = Symbol("DENYLISTED", 0.0, "policy", "Sender, sender domain or client IP is on the deny list")
STAFF_REPORT = Symbol(
    "STAFF_REPORT",
    0.0,
    "policy",
    "A colleague sent this to a report mailbox (policy.report_addresses): delivered for the security team, never held",
)
POLICY_SYMBOLS = (ALLOWLISTED, DENYLISTED, STAFF_REPORT)

# Symbol the runner emits for a crashed or timed-out analyzer (kept as a name to avoid an import cycle).
_ANALYZER_FAILED = "ANALYZER_FAILED"
_TOP_REASONS = 5
_EVIDENCE_MAX = 200
_OVERRIDE_KEYS = {"thresholds", "scores", "group_caps"}
_COMPOSITE_KEYS = {"expr", "score", "group", "description"}


class PolicyError(ValueError):
    """Policy configuration that cannot be used (unknown symbol, bad expression, bad list entry)."""


@dataclass(frozen=True)
class _Profile:
    """Thresholds and scores that apply to one message (base, then direction, then recipient domain)."""

    label: str
    thresholds: PolicyThresholds
    scores: dict[str, float]
    group_caps: dict[str, float]


@dataclass(frozen=True)
class _Composite:
    symbol: Symbol
    expr: str
    predicate: Predicate


def _num(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PolicyError(f"{where}: expected a number, got {value!r}")
    return float(value)


def _num_table(value: Any, where: str) -> dict[str, float]:
    if not isinstance(value, dict):
        raise PolicyError(f"{where}: expected a table")
    return {str(k): _num(v, f"{where}.{k}") for k, v in value.items()}


def _thresholds(base: PolicyThresholds, value: Any, where: str) -> PolicyThresholds:
    if not isinstance(value, dict):
        raise PolicyError(f"{where}: expected a table")
    unknown = set(value) - {"tag", "quarantine", "reject"}
    if unknown:
        raise PolicyError(f"{where}: unknown threshold(s) {sorted(unknown)}")
    return PolicyThresholds(
        tag=_num(value.get("tag", base.tag), f"{where}.tag"),
        quarantine=_num(value.get("quarantine", base.quarantine), f"{where}.quarantine"),
        reject=_num(value.get("reject", base.reject), f"{where}.reject"),
    )


def _layer(base: _Profile, label: str, value: Any, where: str) -> _Profile:
    if not isinstance(value, dict):
        raise PolicyError(f"{where}: expected a table")
    unknown = set(value) - _OVERRIDE_KEYS
    if unknown:
        raise PolicyError(f"{where}: unknown key(s) {sorted(unknown)} (allowed: {sorted(_OVERRIDE_KEYS)})")
    thresholds = (
        _thresholds(base.thresholds, value["thresholds"], f"{where}.thresholds")
        if "thresholds" in value
        else base.thresholds
    )
    scores = {**base.scores, **_num_table(value.get("scores", {}), f"{where}.scores")}
    caps = {**base.group_caps, **_num_table(value.get("group_caps", {}), f"{where}.group_caps")}
    return _Profile(label=label, thresholds=thresholds, scores=scores, group_caps=caps)


def _networks(entries: Iterable[str], where: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    nets = []
    for e in entries:
        try:
            nets.append(ipaddress.ip_network(e.strip(), strict=False))
        except ValueError as exc:
            raise PolicyError(f"{where}: {e!r} is not an IP address or CIDR network") from exc
    return nets


def _domain_matches(domain: str, listed: frozenset[str]) -> str | None:
    """The listed entry that `domain` equals or is a sub-domain of."""
    d = domain.lower().rstrip(".")
    while d:
        if d in listed:
            return d
        _, dot, d = d.partition(".")
        if not dot:
            break
    return None


def _addr_domain(addr: str) -> str:
    return addr.rpartition("@")[2].lower() if "@" in addr else ""


def dmarc_failed(findings: list[Finding]) -> bool:
    """Whether the sender authentication found DMARC failing (a forged From)."""
    for f in findings:
        ar = f.data.get("authres") if isinstance(f.data, dict) else None
        if isinstance(ar, dict) and ar.get("method") == "dmarc" and ar.get("result") == "fail":
            return True
    return False


class Policy:
    """Built once from `[policy]` settings and the symbol table; `decide` is pure and cheap."""

    def __init__(
        self, settings: PolicySettings, symbols: dict[str, Symbol], site_lists: Callable[[], SiteLists] | None = None
    ) -> None:
        """`site_lists`: the allow and deny entries administrators keep in the store, beside the
        configuration's (`policy.site_lists.StoreLists`); asked once per message."""
        self.settings = settings
        self._site_lists = site_lists
        if settings.analyzer_failure not in ("score", "tempfail"):
            raise PolicyError(
                f"policy.analyzer_failure must be 'score' or 'tempfail', not {settings.analyzer_failure!r}"
            )
        self.symbols: dict[str, Symbol] = dict(symbols)
        for sym in POLICY_SYMBOLS:
            self.symbols.setdefault(sym.name, sym)
        self.composites = self._compile_composites(settings.composites)
        base = _Profile(
            label="",
            thresholds=settings.thresholds,
            scores=_num_table(settings.scores, "policy.scores"),
            group_caps=_num_table(settings.group_caps, "policy.group_caps"),
        )
        self._base = base
        self._check_score_names(base, "policy.scores")
        self._by_direction: dict[str, _Profile] = {}
        for name, value in settings.direction.items():
            if name not in {d.value for d in Direction}:
                raise PolicyError(
                    f"policy.direction: unknown direction {name!r} (inbound, internal, outbound)"
                )
            self._by_direction[name] = _layer(base, name, value, f"policy.direction.{name}")
            self._check_score_names(self._by_direction[name], f"policy.direction.{name}.scores")
        self._by_domain: dict[str, Any] = {}
        for dom, value in settings.domain.items():
            # Validate now so a typo stops start-up; the layers are applied per message.
            self._check_score_names(
                _layer(base, dom, value, f"policy.domain.{dom}"), f"policy.domain.{dom}.scores"
            )
            self._by_domain[dom.lower().rstrip(".")] = value
        self._domain_keys = frozenset(self._by_domain)
        self._profiles: dict[tuple[str, str], _Profile] = {}
        self._allow_senders = frozenset(s.strip().lower() for s in settings.allow_senders)
        self._deny_senders = frozenset(s.strip().lower() for s in settings.deny_senders)
        self._allow_domains = frozenset(s.strip().lower().rstrip(".") for s in settings.allow_domains)
        self._deny_domains = frozenset(s.strip().lower().rstrip(".") for s in settings.deny_domains)
        self._allow_ips = _networks(settings.allow_ips, "policy.allow_ips")
        self._deny_ips = _networks(settings.deny_ips, "policy.deny_ips")
        self._report_addresses = frozenset(a.strip().lower() for a in settings.report_addresses if a.strip())
        bad = sorted(a for a in self._report_addresses if "@" not in a)
        if bad:
            raise PolicyError(f"policy.report_addresses: not an address: {', '.join(bad)}")

    # -- construction -------------------------------------------------------------------------

    def _compile_composites(self, table: dict[str, dict[str, Any]]) -> list[_Composite]:
        out: list[_Composite] = []
        for name, spec in table.items():
            where = f"policy.composites.{name}"
            if not isinstance(spec, dict):
                raise PolicyError(f"{where}: expected a table with expr and score")
            unknown = set(spec) - _COMPOSITE_KEYS
            if unknown:
                raise PolicyError(
                    f"{where}: unknown key(s) {sorted(unknown)} (allowed: {sorted(_COMPOSITE_KEYS)})"
                )
            if name in self.symbols:
                raise PolicyError(f"{where}: {name} is already declared as a symbol")
            expr = spec.get("expr")
            if not isinstance(expr, str):
                raise PolicyError(f'{where}: missing expr (e.g. "QR_IN_CID_ATTACHMENT && LEXICON_SUBSIDY")')
            try:
                pred, names = compile_composite(expr)
            except CompositeSyntaxError as exc:
                raise PolicyError(f"{where}: {exc}") from exc
            unknown_names = sorted(n for n in names if n not in self.symbols)
            if unknown_names:
                raise PolicyError(f"{where}: unknown symbol(s) {', '.join(unknown_names)}")
            sym = Symbol(
                name=name,
                score=_num(spec.get("score", 0.0), f"{where}.score"),
                group=str(spec.get("group", "composite")),
                description=str(spec.get("description", expr)),
            )
            self.symbols[name] = sym
            out.append(_Composite(symbol=sym, expr=expr, predicate=pred))
        return out

    def _check_score_names(self, base: _Profile, where: str) -> None:
        unknown = sorted(n for n in base.scores if n not in self.symbols)
        if unknown:
            raise PolicyError(f"{where}: unknown symbol(s) {', '.join(unknown)}")

    def _profile(self, direction: str, domain_key: str) -> _Profile:
        key = (direction, domain_key)
        prof = self._profiles.get(key)
        if prof is None:
            prof = self._by_direction.get(direction, replace(self._base, label=direction))
            if domain_key:
                prof = _layer(
                    prof,
                    f"{direction}, {domain_key}",
                    self._by_domain[domain_key],
                    f"policy.domain.{domain_key}",
                )
            self._profiles[key] = prof
        return prof

    # -- lists ----------------------------------------------------------------------------------

    def _list_match(
        self,
        envelope: Envelope,
        message: Message,
        senders: frozenset[str],
        domains: frozenset[str],
        nets: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network],
        kind: str,
        kept: bool = False,
    ) -> str | None:
        """Why the message is on the list (None when it is not); `kept`: the store's list, else the
        configuration's."""
        where = (f"the {kind} list",) * 3 if kept else (f"{kind}_senders", f"{kind}_domains", f"{kind}_ips")
        identities = [a.lower() for a in (envelope.mail_from, message.from_.addr) if a]
        for addr in identities:
            if addr in senders:
                return f"sender {addr} is on {where[0]}"
        for addr in identities:
            hit = _domain_matches(_addr_domain(addr), domains) if domains else None
            if hit:
                return f"sender domain {_addr_domain(addr)} is on {where[1]} ({hit})"
        if nets and envelope.peer_ip:
            try:
                ip = ipaddress.ip_address(envelope.peer_ip.split("%")[0])
            except ValueError:
                return None
            for net in nets:
                if ip.version == net.version and ip in net:
                    return f"client IP {ip} is on {where[2]} ({net})"
        return None

    # -- decision -------------------------------------------------------------------------------

    def decide(self, findings: list[Finding], envelope: Envelope, message: Message) -> Verdict:
        """The verdict for one message; with recipients under different domain overrides, the strictest wins."""
        direction = (
            envelope.direction.value if isinstance(envelope.direction, Direction) else str(envelope.direction)
        )
        domain_keys: list[str] = []
        for rcpt in envelope.rcpt_tos or [""]:
            key = _domain_matches(_addr_domain(rcpt), self._domain_keys) if self._domain_keys else None
            k = key or ""
            if k not in domain_keys:
                domain_keys.append(k)
        site = self._site_lists() if self._site_lists is not None else None
        deny = self._list_match(
            envelope, message, self._deny_senders, self._deny_domains, self._deny_ips, "deny"
        )
        if deny is None and site is not None:
            deny = self._list_match(envelope, message, site.deny_senders, site.deny_domains, site.deny_ips, "deny", kept=True)
        allow = None
        if deny is None:
            allow = self._list_match(
                envelope, message, self._allow_senders, self._allow_domains, self._allow_ips, "allow"
            )
            if allow is None and site is not None:
                allow = self._list_match(
                    envelope, message, site.allow_senders, site.allow_domains, site.allow_ips, "allow", kept=True
                )
        allow_refused = ""
        if allow and "sender" in allow and dmarc_failed(findings):
            # A spoofed From must not buy a pass: sender-based allow needs DMARC not to fail.
            allow_refused = f"{allow}, but DMARC failed: allow list not applied"
            allow = None
        best: Verdict | None = None
        for dk in domain_keys:
            v = self._decide_profile(self._profile(direction, dk), findings, deny, allow, allow_refused)
            if best is None or (v.action.severity, v.score) > (best.action.severity, best.score):
                best = v
        assert best is not None
        report = self._staff_report(envelope, direction)
        return self._as_report(best, envelope, report) if report else best

    def _staff_report(self, envelope: Envelope, direction: str) -> str:
        """The report mailboxes a colleague's message goes to, when it goes to nothing else ("" if not)."""
        if not self._report_addresses or direction != Direction.INTERNAL.value or not envelope.rcpt_tos:
            return ""
        rcpts = sorted({r.strip().lower() for r in envelope.rcpt_tos})
        return ", ".join(rcpts) if all(r in self._report_addresses for r in rcpts) else ""

    @staticmethod
    def _as_report(v: Verdict, envelope: Envelope, report: str) -> Verdict:
        """A staff report reaches the security team: what would hold it only tags it. Mail from
        outside to the same address, or a report copied to anyone else, is judged as usual."""
        note = Finding(
            symbol=STAFF_REPORT.name,
            score=0.0,
            evidence=f"{envelope.mail_from or 'a colleague'} reported to {report}",
            source="policy",
            group=STAFF_REPORT.group,
        )
        action, reasons = v.action, list(v.reasons)
        if action in (Action.QUARANTINE, Action.REJECT):
            reasons.insert(0, f"staff report to {report}: would be {action.value}, delivered tagged instead")
            action = Action.TAG
        else:
            reasons.insert(0, f"staff report to {report}")
        return Verdict(action=action, score=v.score, findings=[*v.findings, note], reasons=reasons)

    def _effective(self, f: Finding, scores: dict[str, float]) -> Finding:
        if not math.isfinite(f.score):
            # A NaN would make every threshold comparison false and pass the message silently.
            return replace(f, score=0.0, data={**f.data, "invalid_score": repr(f.score)})
        override = scores.get(f.symbol)
        if override is None:
            return replace(f, data=dict(f.data))
        sym = self.symbols.get(f.symbol)
        if sym is not None and sym.score != 0 and f.score != sym.score:
            # The analyzer scaled its own score (e.g. by confidence): keep that proportion.
            score = override * (f.score / sym.score)
        else:
            score = override
        return replace(f, score=score, data=dict(f.data))

    def _decide_profile(
        self, prof: _Profile, findings: list[Finding], deny: str | None, allow: str | None, allow_refused: str
    ) -> Verdict:
        out = [self._effective(f, prof.scores) for f in findings]
        present = {f.symbol for f in out}
        for comp in self.composites:
            if comp.predicate(present):
                score = prof.scores.get(comp.symbol.name, comp.symbol.score)
                out.append(
                    Finding(
                        symbol=comp.symbol.name,
                        score=score,
                        evidence=comp.expr,
                        source="policy",
                        group=comp.symbol.group,
                        data={"composite": comp.expr},
                    )
                )
                present.add(comp.symbol.name)
        self._apply_caps(out, prof.group_caps)
        if deny:
            out.append(self._list_finding(DENYLISTED, deny, prof))
        if allow:
            out.append(self._list_finding(ALLOWLISTED, allow, prof))
        score = sum(f.score for f in out)
        t = prof.thresholds
        if score >= t.reject:
            action, why = Action.REJECT, f"score {score:.1f} ≥ reject threshold {t.reject:g}"
        elif score >= t.quarantine:
            action, why = Action.QUARANTINE, f"score {score:.1f} ≥ quarantine threshold {t.quarantine:g}"
        elif score >= t.tag:
            action, why = Action.TAG, f"score {score:.1f} ≥ tag threshold {t.tag:g}"
        else:
            action, why = Action.DELIVER, f"score {score:.1f} below tag threshold {t.tag:g}"
        if prof.label:
            why += f" ({prof.label} policy)"
        reasons: list[str] = []
        failed = [f for f in out if f.symbol == _ANALYZER_FAILED]
        if deny:
            action = Action.REJECT
            reasons.append(f"denylisted: {deny}")
        elif allow:
            action = Action.DELIVER
            reasons.append(f"allowlisted: {allow}")
        elif (
            failed
            and self.settings.analyzer_failure == "tempfail"
            and action.severity < Action.TEMPFAIL.severity
        ):
            action = Action.TEMPFAIL
            reasons.append(
                "analysis incomplete ("
                + "; ".join(f.evidence for f in failed)
                + "): policy analyzer_failure = tempfail"
            )
        elif (deferred := [f for f in out if f.data.get("tempfail") is True]) and action.severity < Action.TEMPFAIL.severity:
            # An engine configured to defer when it cannot scan (e.g. clamd down, on_failure = "tempfail").
            action = Action.TEMPFAIL
            reasons.append("scan incomplete (" + "; ".join(f.evidence for f in deferred) + "): deferred until it can run")
        if allow_refused:
            reasons.append(allow_refused)
        reasons.append(why)
        top = sorted((f for f in out if f.score > 0), key=lambda f: -f.score)[:_TOP_REASONS]
        for f in top:
            ev = f.evidence if len(f.evidence) <= _EVIDENCE_MAX else f.evidence[: _EVIDENCE_MAX - 1] + "…"
            reasons.append(f"{f.symbol} +{f.score:.1f}" + (f": {ev}" if ev else ""))
        return Verdict(action=action, score=round(score, 3), findings=out, reasons=reasons)

    @staticmethod
    def _list_finding(sym: Symbol, evidence: str, prof: _Profile) -> Finding:
        return Finding(
            symbol=sym.name,
            score=prof.scores.get(sym.name, sym.score),
            evidence=evidence,
            source="policy",
            group=sym.group,
        )

    @staticmethod
    def _apply_caps(findings: list[Finding], caps: dict[str, float]) -> None:
        """Scale the positive scores of a group down so that they add up to its cap at most."""
        if not caps:
            return
        for group, cap in caps.items():
            members = [f for f in findings if f.group == group and f.score > 0]
            total = sum(f.score for f in members)
            if total > cap and total > 0:
                factor = cap / total
                for f in members:
                    f.data["uncapped_score"] = f.score
                    f.score = f.score * factor
