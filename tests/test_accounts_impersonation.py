"""The outside half of the attack: external mail posing as an internal department is scored as impersonation."""

from __future__ import annotations

import pytest

from mailmoat.config import Settings
from mailmoat.model import Direction, Envelope
from mailmoat.scanner import Scanner

OURS = "victim-corp.com"


def raw(from_: str) -> bytes:
    return (f"From: {from_}\r\nTo: zhang.wei@{OURS}\r\nSubject: 关于发放补贴的通知\r\nDate: Tue, 10 Jun 2025 09:12:00 +0800\r\n"
            "Message-ID: <n1@sender.example>\r\n\r\n各位同事：请查收附件并按要求办理。\r\n").encode()


@pytest.fixture
def scanner(settings: Settings) -> Scanner:
    settings.server.domains = [OURS]
    return Scanner(settings)


async def scan(scanner: Scanner, from_: str, direction: Direction = Direction.INBOUND) -> tuple[set[str], str]:
    addr = from_.rpartition("<")[2].rstrip(">")
    r = await scanner.scan(raw(from_), Envelope(mail_from=addr, rcpt_tos=[f"zhang.wei@{OURS}"], direction=direction))
    return {f.symbol for f in r.verdict.findings}, r.verdict.action.value


@pytest.mark.parametrize(
    ("from_", "expected"),
    [
        ("财务部 <notice@mail-service.top>", {"IMPERSONATION_DEPARTMENT"}),
        ("人事部 <hr@163.com>", {"IMPERSONATION_DEPARTMENT"}),
        ("财务部 <finance@victim-c0rp.com>", {"IMPERSONATION_DEPARTMENT", "FROM_LOOKALIKE_PROTECTED"}),
        ("HR Department <hr@vlctim-corp.com>", {"IMPERSONATION_DEPARTMENT", "FROM_LOOKALIKE_PROTECTED"}),
        ("财务部 <f@vіctim-corp.com>", {"IMPERSONATION_DEPARTMENT", "FROM_LOOKALIKE_PROTECTED"}),  # Cyrillic і
        ("财务部 <f@xn--vctim-corp-x2i.com>", {"IMPERSONATION_DEPARTMENT", "FROM_LOOKALIKE_PROTECTED"}),
        ("Finance <finance@victim-corp.co>", {"IMPERSONATION_DEPARTMENT", "FROM_SIMILAR_PROTECTED"}),
        ("人事部 <hr@victim-corp-hr.com>", {"IMPERSONATION_DEPARTMENT", "FROM_SIMILAR_PROTECTED"}),
    ],
)
async def test_external_mail_posing_as_a_department(scanner: Scanner, from_: str, expected: set[str]) -> None:
    symbols, action = await scan(scanner, from_)
    assert expected <= symbols
    assert action in ("tag", "quarantine", "reject")


async def test_lookalike_department_mail_is_held(scanner: Scanner) -> None:
    _, action = await scan(scanner, "财务部 <finance@victim-c0rp.com>")
    assert action in ("quarantine", "reject")


async def test_colleague_with_their_own_name_is_not_impersonation(scanner: Scanner) -> None:
    symbols, _ = await scan(scanner, "Zhang Min <zhang.min@victim-corp.com>", Direction.INTERNAL)
    assert not {s for s in symbols if s.startswith(("IMPERSONATION_", "FROM_LOOKALIKE", "FROM_SIMILAR"))}


async def test_outside_mail_with_our_own_domain_and_a_department_name(scanner: Scanner) -> None:
    symbols, action = await scan(scanner, f"财务部 <finance@{OURS}>")
    assert "FROM_SPOOFS_PROTECTED" in symbols
    assert "IMPERSONATION_DEPARTMENT" in symbols
    assert action != "deliver"
