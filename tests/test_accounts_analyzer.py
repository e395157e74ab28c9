"""The account analyzer: findings from the stored profiles, read only; nothing for inbound mail or without a store."""

from __future__ import annotations

import time

from mailmoat.accounts import observe
from mailmoat.analyzers.account import AccountAnalyzer
from mailmoat.analyzers.base import AnalyzerEnv
from mailmoat.config import Settings
from mailmoat.model import Direction, Envelope
from mailmoat.scanner import Scanner
from mailmoat.store.db import Store
from tests.support import accountsim as sim

COLLEAGUES = [f"c{i:02d}@corp.test" for i in range(20)]


def test_disabled_without_a_store(settings: Settings) -> None:
    assert not AccountAnalyzer(AnalyzerEnv(settings=settings, store=None)).enabled()


async def test_outbound_rate_limit_holds_the_excess(settings: Settings) -> None:
    org = sim.make_org(COLLEAGUES, n_senders=2)
    settings.server.domains = [org.domain]
    settings.accounts.submission_hosts = [sim.MAIL_HOST]
    settings.accounts.outbound_rate_per_hour = 5
    store = Store(settings.db_url, raw_dir=settings.raw_dir)
    sim.replay(store, settings, sim.normal_week(org, time.time() - 3600))
    scanner = Scanner(settings, store)
    a = org.senders[0]
    actions = []
    for i in range(4):
        rcpts = [f"p{i}@partner{i}.example", f"q{i}@partner{i}.example"]
        env = Envelope(mail_from=a, rcpt_tos=rcpts, direction=Direction.OUTBOUND)
        raw = sim.work_mail(org, a, rcpts, time.time(), "Quote", f"Please find our quote number {i} below.")
        r = await scanner.scan(raw, env)
        actions.append((r.verdict.action.value, {f.symbol for f in r.verdict.findings}))
        store.record_message(env, r.message, r.verdict, "")
        await observe(store, settings, env, r.message, r.verdict)
    assert [x[0] for x in actions[:2]] == ["deliver", "deliver"]
    assert "ACCOUNT_RATE_LIMIT" in actions[2][1] and actions[2][0] == "quarantine"  # 6 > 5 recipients this hour
    # Inbound mail is never judged by the account profiles.
    env = Envelope(mail_from=a, rcpt_tos=[COLLEAGUES[3]], direction=Direction.INBOUND)
    r = await scanner.scan(sim.work_mail(org, a, [COLLEAGUES[3]], time.time(), "x", "y", ip=sim.ATTACKER_IP, name="财务部"), env)
    assert not any(f.source == "account" for f in r.verdict.findings)
    store.close()


NOTICE = ("各位同事：2027年度社保和公积金缴费基数调整、个税退税申领已开放，补贴随12月工资发放。"
          "请于12月10日前登录服务商平台 {link} 核对个人信息和工资卡账户。人事部")


async def test_hr_links_to_its_usual_provider_are_not_the_subsidy_wave(settings: Settings) -> None:
    org = sim.make_org(COLLEAGUES, n_senders=2)
    settings.server.domains = [org.domain]
    settings.accounts.submission_hosts = [sim.MAIL_HOST]
    store = Store(settings.db_url, raw_dir=settings.raw_dir)
    hr = org.senders[0]
    now = time.time()
    history = sim.normal_week(org, now - 3600)
    # HR has sent its provider's link for three months.
    for months_ago in (3, 2, 1):
        at = now - months_ago * 30 * 86400
        env = Envelope(mail_from=hr, rcpt_tos=COLLEAGUES[2:5], received_at=at, direction=Direction.INTERNAL)
        body = NOTICE.format(link=f"https://hr.benefits-provider.example/acme/{months_ago}")
        history.append((env, sim.work_mail(org, hr, COLLEAGUES[2:5], at, "员工福利登记通知", body)))
    sim.replay(store, settings, history)
    scanner = Scanner(settings, store)

    async def send(link: str, ip: str = "") -> tuple[str, set[str]]:
        env = Envelope(mail_from=hr, rcpt_tos=COLLEAGUES[2:5], direction=Direction.INTERNAL)
        raw = sim.work_mail(org, hr, COLLEAGUES[2:5], time.time(), "员工福利登记通知", NOTICE.format(link=link), ip=ip)
        v = (await scanner.scan(raw, env)).verdict
        return v.action.value, {f.symbol for f in v.findings}

    action, symbols = await send("https://hr.benefits-provider.example/acme/2027")
    assert action == "deliver" and {"SUBSIDY_FRAUD_WITH_LINK", "ACCOUNT_USUAL_LINKS"} <= symbols, symbols
    # The same words with a link the account never sent: the stolen-account wave.
    action, symbols = await send("https://benefits-provider-acme.example/login")
    assert action != "deliver" and "ACCOUNT_USUAL_LINKS" not in symbols, symbols
    # From a new client IP the usual link earns nothing either.
    action, symbols = await send("https://hr.benefits-provider.example/acme/2027", ip=sim.ATTACKER_IP)
    assert "ACCOUNT_USUAL_LINKS" not in symbols and "ACCOUNT_NEW_IP" in symbols, symbols
    store.close()
