"""Sender authentication: SPF (pyspf), DKIM and ARC (dkimpy), DMARC alignment and policy — all through our resolver."""

from __future__ import annotations

import asyncio
import contextvars
import ipaddress
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import dkim
import dns.resolver
import spf

from mailmoat.analyzers.base import AnalysisContext, AnalyzerEnv, BaseAnalyzer
from mailmoat.dnsresolver import DnsTempError, build_resolver, resolve, txt_records
from mailmoat.model import Direction, Envelope, Finding, Message, Symbol
from mailmoat.urlcheck import domains as dom

MAX_DKIM_SIGNATURES = 5

SYMBOLS = (
    Symbol("AUTH_NOT_CHECKED", 0.0, "auth", "Sender authentication not checked (no DNS resolver configured)"),
    Symbol("AUTH_INTERNAL", 0.0, "auth", "Sender authentication skipped: internal or relayed mail from the organisation's own network"),
    Symbol("SPF_PASS", 0.0, "auth", "SPF: the client is allowed to send for the envelope sender's domain"),
    Symbol("SPF_FAIL", 3.0, "auth", "SPF fail: the sender's domain says this client may not send its mail"),
    Symbol("SPF_SOFTFAIL", 1.5, "auth", "SPF softfail: the sender's domain says this client is probably not allowed"),
    Symbol("SPF_NEUTRAL", 0.5, "auth", "SPF neutral: the sender's domain makes no statement about this client"),
    Symbol("SPF_NONE", 0.5, "auth", "SPF none: the sender's domain publishes no SPF record"),
    Symbol("SPF_TEMPERROR", 0.0, "auth", "SPF could not be checked now (DNS error)"),
    Symbol("SPF_PERMERROR", 1.0, "auth", "SPF record of the sender's domain is broken"),
    Symbol("DKIM_PASS", 0.0, "auth", "A DKIM signature verifies"),
    Symbol("DKIM_FAIL", 2.0, "auth", "A DKIM signature does not verify (message changed or forged)"),
    Symbol("DKIM_NONE", 0.2, "auth", "The message carries no DKIM signature"),
    Symbol("DKIM_TEMPERROR", 0.0, "auth", "A DKIM key could not be fetched now (DNS error)"),
    Symbol("DKIM_PERMERROR", 1.0, "auth", "A DKIM signature is malformed or its key is missing"),
    Symbol("DMARC_PASS", -1.0, "auth", "DMARC pass: the From domain is authenticated by aligned SPF or DKIM"),
    Symbol("DMARC_REJECT", 10.0, "auth", "DMARC fail and the From domain asks receivers to reject such mail"),
    Symbol("DMARC_QUARANTINE", 7.0, "auth", "DMARC fail and the From domain asks receivers to quarantine such mail"),
    Symbol("DMARC_FAIL", 2.0, "auth", "DMARC fail (the From domain's policy is p=none)"),
    Symbol("DMARC_NONE", 0.3, "auth", "The From domain publishes no DMARC policy"),
    Symbol("DMARC_TEMPERROR", 0.0, "auth", "DMARC could not be checked now (DNS error)"),
    Symbol("ARC_PASS", 0.0, "auth", "The ARC chain of intermediaries verifies"),
    Symbol("ARC_FAIL", 1.0, "auth", "The ARC chain of intermediaries is broken"),
)

# pyspf looks records up through its module-level DNSLookup; route it to the resolver of the
# current check (a context variable, so concurrent checks with other resolvers stay apart).
_SPF_RESOLVER: contextvars.ContextVar[dns.resolver.Resolver | None] = contextvars.ContextVar("mailmoat_spf_resolver", default=None)
_ORIGINAL_SPF_LOOKUP = spf.DNSLookup


def _spf_lookup(name: str, qtype: str, tcpfallback: bool = True, timeout: float = 30) -> list[tuple[tuple[str, str], Any]]:
    resolver = _SPF_RESOLVER.get()
    if resolver is None:
        return _ORIGINAL_SPF_LOOKUP(name, qtype, tcpfallback, timeout)  # type: ignore[no-any-return]
    try:
        # pyspf passes its whole remaining budget as the time-out; one query gets at most ours.
        records = resolve(resolver, name, qtype, lifetime=min(float(timeout), resolver.lifetime))
    except DnsTempError as exc:
        raise spf.TempError(f"DNS {exc}") from exc
    out: list[tuple[tuple[str, str], Any]] = []
    for rd in records:
        if qtype in ("A", "AAAA"):
            out.append(((name, qtype), rd.address))  # type: ignore[attr-defined]
        elif qtype == "MX":
            out.append(((name, qtype), (rd.preference, rd.exchange)))  # type: ignore[attr-defined]
        elif qtype == "PTR":
            out.append(((name, qtype), rd.target.to_text(True)))  # type: ignore[attr-defined]
        elif qtype in ("TXT", "SPF"):
            out.append(((name, qtype), rd.strings))  # type: ignore[attr-defined]
    return out


spf.DNSLookup = _spf_lookup


# Addresses of a site's own infrastructure (never the outside client in a Received chain).
_INTERNAL_NETS = [
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "::1/128", "fc00::/7", "fe80::/10")
]


class _LogCapture(logging.Logger):
    """A logger that remembers what dkimpy reports, to tell a DNS time-out from a bad signature."""

    def __init__(self) -> None:
        super().__init__("mailmoat.auth.dkim", logging.DEBUG)
        self.lines: list[str] = []

    def _log(self, level: int, msg: object, args: Any, *a: Any, **kw: Any) -> None:
        try:
            self.lines.append(str(msg) % args if args else str(msg))
        except (TypeError, ValueError):
            self.lines.append(str(msg))


def _tags(value: str) -> dict[str, str]:
    """tag=value pairs of a DKIM-Signature, ARC-Seal or DMARC record."""
    out: dict[str, str] = {}
    for item in value.split(";"):
        k, sep, v = item.partition("=")
        if sep:
            out[k.strip().lower()] = re.sub(r"\s+", "", v) if k.strip().lower() in ("b", "bh") else v.strip()
    return out


@dataclass
class _DkimResult:
    domain: str
    selector: str
    result: str  # pass, fail, temperror, permerror
    why: str = ""


@dataclass
class _State:
    findings: list[Finding] = field(default_factory=list)
    spf_result: str = ""
    spf_domain: str = ""
    dkim: list[_DkimResult] = field(default_factory=list)
    arc_pass_sealer: str = ""


class AuthAnalyzer(BaseAnalyzer):
    name: ClassVar[str] = "auth"
    symbols: ClassVar[tuple[Symbol, ...]] = SYMBOLS

    def __init__(self, env: AnalyzerEnv) -> None:
        super().__init__(env)
        s = env.settings
        self.resolver = build_resolver(s.dns)
        self.timeout = s.dns.timeout
        self.relay_networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for net in s.server.relay_networks:
            try:
                self.relay_networks.append(ipaddress.ip_network(net, strict=False))
            except ValueError:
                continue  # the listener validates relay_networks; a bad entry just does not match here
        self.trusted_sealers = {d.lower().strip(".") for d in s.auth.trusted_arc_sealers}

    async def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        if self.resolver is None:
            return [self.finding("AUTH_NOT_CHECKED", "no DNS resolver configured (dns.nameservers is empty)")]
        env = ctx.envelope
        if env.direction != Direction.INBOUND:
            return [self.finding("AUTH_INTERNAL", f"{env.direction.value} mail: sender authentication applies to inbound mail")]
        client = self.external_client(env, ctx.message)
        if client is None:
            return [self.finding("AUTH_INTERNAL", f"client {env.peer_ip} is in the relay networks and no outside hop was found")]
        ip, helo = client
        budget = max(1.0, ctx.time_left() - 0.5)
        return await asyncio.to_thread(self.check, ctx.message, env, ip, helo, budget)

    @property
    def _r(self) -> dns.resolver.Resolver:
        assert self.resolver is not None  # analyze() returns early without one
        return self.resolver

    def _is_relay(self, ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(addr in net for net in self.relay_networks)

    def external_client(self, env: Envelope, msg: Message) -> tuple[str, str] | None:
        """The IP and HELO to authenticate: the SMTP client, or, when our own mail system handed the
        message on, the first hop from outside in the Received headers it added."""
        if not env.peer_ip or not self._is_relay(env.peer_ip):
            return env.peer_ip, env.helo
        for hop in msg.received:
            if not hop.ip:
                continue
            if self._is_relay(hop.ip):
                continue
            try:
                addr = ipaddress.ip_address(hop.ip)
            except ValueError:
                continue
            if any(addr in net for net in _INTERNAL_NETS):
                continue
            return hop.ip, hop.helo or hop.from_host
        return None

    # -- the checks (run in a worker thread: pyspf and dkimpy block) ----------------------------

    def check(self, msg: Message, env: Envelope, ip: str, helo: str, budget: float) -> list[Finding]:
        _SPF_RESOLVER.set(self._r)
        deadline = time.monotonic() + budget
        st = _State()
        if ip:
            self._spf(st, env, ip, helo, max(0.5, deadline - time.monotonic()))
        self._dkim(st, msg)
        if msg.header("ARC-Seal"):
            self._arc(st, msg)
        self._dmarc(st, msg)
        return st.findings

    def _authres(self, method: str, result: str, props: dict[str, str], reason: str = "") -> dict[str, Any]:
        ar: dict[str, Any] = {"method": method, "result": result, "props": props}
        if reason:
            ar["reason"] = reason[:160]
        return {"authres": ar}

    def _spf(self, st: _State, env: Envelope, ip: str, helo: str, budget: float) -> None:
        mail_from = env.mail_from.strip().strip("<>")
        if mail_from and "@" in mail_from:
            sender, prop = mail_from, {"smtp.mailfrom": mail_from}
        else:
            sender, prop = f"postmaster@{helo}", {"smtp.helo": helo}
        domain = sender.rpartition("@")[2].lower()
        try:
            q = spf.query(i=ip, s=sender, h=helo or ip, timeout=min(self.timeout, budget), querytime=budget)
            result, _code, explanation = q.check()
        except Exception as exc:  # pyspf raises on some malformed input; report instead of crashing
            result, explanation = "permerror", f"{type(exc).__name__}: {exc}"
        result = str(result).lower()
        if result == "error":
            result = "temperror"
        st.spf_result, st.spf_domain = result, domain
        record = ""
        if result in ("pass", "fail", "softfail", "neutral", "permerror"):
            try:
                record = next((r for r in txt_records(self._r, domain, self.timeout) if r.lower().startswith("v=spf1")), "")
            except DnsTempError:
                record = ""
        words = {
            "pass": f"{ip} is allowed to send for {domain}",
            "fail": f"{ip} is NOT allowed to send for {domain}",
            "softfail": f"{ip} is probably not allowed to send for {domain}",
            "neutral": f"{domain} makes no statement about {ip}",
            "none": f"{domain} publishes no SPF record (client {ip})",
            "temperror": f"DNS error checking {domain}: {explanation}",
            "permerror": f"broken SPF record for {domain}: {explanation} (client {ip})",
        }
        if result not in words:
            result = "permerror"
        ev = f"SPF {result}: {words[result]}" + (f" (record: {record})" if record else "")
        sym = f"SPF_{result.upper()}"
        st.findings.append(self.finding(sym, ev, {**self._authres("spf", result, prop), "ip": ip, "record": record}))

    def _dnsfunc(self, name: bytes | str, timeout: float = 5) -> bytes | None:
        n = name.decode("ascii", "replace") if isinstance(name, bytes) else name
        try:
            records = txt_records(self._r, n.rstrip("."), min(timeout, self.timeout))
        except DnsTempError as exc:
            raise dkim.DnsTimeoutError(str(exc)) from exc
        return records[0].encode() if records else None

    def _dkim(self, st: _State, msg: Message) -> None:
        raw = msg.raw
        sigs = msg.header_all("DKIM-Signature")
        if not sigs:
            st.findings.append(self.finding("DKIM_NONE", "no DKIM signature", self._authres("dkim", "none", {})))
            return
        for idx, value in enumerate(sigs[:MAX_DKIM_SIGNATURES]):
            tags = _tags(value)
            d, s = tags.get("d", "").lower(), tags.get("s", "")
            log = _LogCapture()
            try:
                verifier = dkim.DKIM(raw, logger=log, timeout=int(max(1, self.timeout)))
                ok = verifier.verify(idx=idx, dnsfunc=self._dnsfunc)
                if ok:
                    res = _DkimResult(d, s, "pass", "signature verifies")
                elif any("DnsTimeoutError" in line for line in log.lines):
                    res = _DkimResult(d, s, "temperror", f"DNS error fetching the key {s}._domainkey.{d}")
                elif any("missing public key" in line or "KeyFormatError" in line or "public key" in line for line in log.lines):
                    why = next((ln for ln in log.lines if "key" in ln.lower()), "key problem")
                    res = _DkimResult(d, s, "permerror", f"key {s}._domainkey.{d}: {why}")
                else:
                    res = _DkimResult(d, s, "fail", "signature does not verify (headers changed or forged)")
            except dkim.ValidationError as exc:
                why = "body hash mismatch (the body was changed after signing)" if "body hash" in str(exc) else str(exc)
                res = _DkimResult(d, s, "fail", why)
            except dkim.DKIMException as exc:
                res = _DkimResult(d, s, "permerror", f"malformed signature: {exc}")
            except Exception as exc:  # dkimpy can trip over odd input; never let it crash the scan
                res = _DkimResult(d, s, "permerror", f"{type(exc).__name__}: {exc}")
            st.dkim.append(res)
            props = {"header.d": d, "header.s": s} if d else {}
            ev = f"DKIM {res.result} for d={d or '?'} s={s or '?'}: {res.why}"
            reason = "" if res.result == "pass" else res.why
            st.findings.append(self.finding(f"DKIM_{res.result.upper()}", ev, self._authres("dkim", res.result, props, reason)))

    def _arc(self, st: _State, msg: Message) -> None:
        log = _LogCapture()
        try:
            cv, results, reason = dkim.arc_verify(msg.raw, logger=log, dnsfunc=self._dnsfunc, timeout=int(max(1, self.timeout)))
        except Exception as exc:  # a malformed chain is a failed chain
            cv, results, reason = b"fail", [], f"{type(exc).__name__}: {exc}"
        cv_s = (cv or b"fail").decode() if isinstance(cv, bytes) else str(cv or "fail")
        sealer = ""
        if results:
            newest = max(results, key=lambda r: int(r.get("instance", 0)))
            d = newest.get("as-domain", b"")
            sealer = (d.decode() if isinstance(d, bytes) else str(d)).lower()
        if cv_s == "pass":
            st.arc_pass_sealer = sealer
            st.findings.append(
                self.finding("ARC_PASS", f"ARC chain of {len(results)} set(s) verifies (newest sealer {sealer})", self._authres("arc", "pass", {}))
            )
        elif cv_s != "none":
            st.findings.append(self.finding("ARC_FAIL", f"ARC chain broken: {reason}", self._authres("arc", "fail", {}, str(reason))))

    def _dmarc_record(self, from_domain: str) -> tuple[str, str, dict[str, str]] | None:
        """(record text, the domain it was found at, its tags); None when there is none. DnsTempError passes through."""
        org = dom.registrable(from_domain)
        for where in dict.fromkeys([from_domain, org]):
            if not where:
                continue
            recs = [r for r in txt_records(self._r, f"_dmarc.{where}", self.timeout) if re.match(r"^v\s*=\s*DMARC1\s*(;|$)", r, re.I)]
            if len(recs) == 1:
                return recs[0], where, _tags(recs[0])
            if len(recs) > 1:
                return None  # RFC 7489 6.6.3: more than one record means none
        return None

    def _dmarc(self, st: _State, msg: Message) -> None:
        from_domain = msg.from_.domain.strip(".").lower()
        if not from_domain:
            return
        props = {"header.from": from_domain}
        try:
            found = self._dmarc_record(from_domain)
        except DnsTempError as exc:
            st.findings.append(self.finding("DMARC_TEMPERROR", f"DMARC for {from_domain}: {exc}", self._authres("dmarc", "temperror", props)))
            return
        if found is None:
            st.findings.append(self.finding("DMARC_NONE", f"{from_domain} publishes no DMARC record", self._authres("dmarc", "none", props)))
            return
        record, at, tags = found
        policy = tags.get("p", "none").lower()
        if at != from_domain and tags.get("sp"):
            policy = tags["sp"].lower()
        if policy not in ("none", "quarantine", "reject"):
            policy = "none"
        adkim, aspf = tags.get("adkim", "r").lower(), tags.get("aspf", "r").lower()

        def aligned(other: str, mode: str) -> bool:
            other = other.strip(".").lower()
            return other == from_domain if mode == "s" else bool(other) and dom.registrable(other) == dom.registrable(from_domain)

        spf_ok = st.spf_result == "pass" and aligned(st.spf_domain, aspf)
        dkim_ok = [r for r in st.dkim if r.result == "pass" and aligned(r.domain, adkim)]
        props = {"header.from": from_domain, "policy.dmarc": policy}
        if spf_ok or dkim_ok:
            how = f"aligned DKIM d={dkim_ok[0].domain}" if dkim_ok else f"aligned SPF {st.spf_domain}"
            st.findings.append(self.finding("DMARC_PASS", f"DMARC pass for {from_domain} ({how})", self._authres("dmarc", "pass", props)))
            return
        why: list[str] = []
        if not st.spf_result:
            why.append("SPF not evaluated (no client IP)")
        elif st.spf_result != "pass":
            why.append(f"SPF {st.spf_result} for {st.spf_domain}")
        else:
            why.append(f"SPF pass for {st.spf_domain} is not aligned with {from_domain}")
        passing = [r for r in st.dkim if r.result == "pass"]
        if passing:
            why.append("DKIM pass only for unaligned " + ", ".join(f"d={r.domain}" for r in passing))
        else:
            why.append("no valid DKIM signature")
        ev = f"DMARC fail for {from_domain} (p={policy}): {'; '.join(why)}; record at _dmarc.{at}: {record}"
        sym = {"reject": "DMARC_REJECT", "quarantine": "DMARC_QUARANTINE"}.get(policy, "DMARC_FAIL")
        data = {**self._authres("dmarc", "fail", props, "; ".join(why)), "policy": policy, "record": record}
        score: float | None = None
        if st.arc_pass_sealer and st.arc_pass_sealer in self.trusted_sealers:
            ev += f"; excused: ARC chain sealed by trusted {st.arc_pass_sealer} verifies"
            data["arc_override"] = st.arc_pass_sealer
            score = 0.5
        st.findings.append(self.finding(sym, ev, data, score=score))
