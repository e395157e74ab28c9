"""Crafted reports against the report intake: what a report reports is read in time close to an ordinary report's.

    .venv/bin/python bench/report_intake.py [--repeat N]

Each case is a report to the report mailbox built to make the reading of its forwarded header
block slow: a "From:" line of tens of thousands of letters with no "@", a subject of that size,
ten thousand "From:" lines, and a hundred attached messages. The figure is the best of N reads
(parse included) in milliseconds, and its ratio to an ordinary forwarded report read in the same run.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from email.message import EmailMessage

from mailmoat.parse import parse
from mailmoat.reports import reported_in


def report(body: str, attached: int = 0) -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "bob@example.org", "phish@example.org", "FW: Payroll review"
    m.set_content(body)
    original = b"From: HR <hr@payroll.example>\r\nSubject: Payroll review\r\nMessage-ID: <1@payroll.example>\r\n\r\nhi\r\n"
    for _ in range(attached):
        m.add_attachment(original, maintype="message", subtype="rfc822", filename="suspect.eml")
    return m.as_bytes()


ORDINARY = "Is this real?\n\n-----Original Message-----\nFrom: HR <hr@payroll.example>\nSent: Monday\nTo: bob@example.org\nSubject: Payroll review\n\nhi\n"
CASES: dict[str, Callable[[], bytes]] = {
    "ordinary forwarded report": lambda: report(ORDINARY),
    "From: line of 60,000 letters": lambda: report("From: " + "a" * 60_000 + "\nSubject: Payroll\n"),
    "Subject: line of 60,000 letters": lambda: report("From: hr@payroll.example\nSubject: " + "b" * 60_000 + "\n"),
    "10,000 From: lines": lambda: report("From: x\n" * 10_000),
    "100 attached messages": lambda: report("see attached", attached=100),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    base = 0.0
    print("| report | best of N (ms) | × ordinary |")
    print("|---|---:|---:|")
    for name, build in CASES.items():
        raw = build()
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            reported_in(parse(raw))
            best = min(best, time.perf_counter() - t0)
        base = base or best
        print(f"| {name} | {best * 1000:.1f} | {best / base:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
