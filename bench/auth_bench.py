"""Sender authentication cost per message against a loopback DNS server (SPF + DKIM + DMARC).

Usage: .venv/bin/python bench/auth_bench.py [--messages N]

Serves SPF, DKIM (RSA-2048) and DMARC records for a few hundred sender domains from a dnslib
server on loopback, signs one message per domain with DKIM, then runs the auth analyzer over
them twice: cold (every record fetched) and warm (answers cached by the resolver).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import dkim

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.support helpers

from tests.support.dnsserver import Zone, dns_server, new_dkim_key

from mailmoat.analyzers.auth import AuthAnalyzer
from mailmoat.analyzers.base import AnalysisContext, AnalyzerEnv
from mailmoat.config import Settings
from mailmoat.model import Envelope
from mailmoat.parse import parse


async def run(n: int) -> None:
    key = new_dkim_key(2048)
    zone = Zone()
    msgs = []
    for i in range(n):
        d = f"sender{i}.test"
        zone.txt(d, "v=spf1 ip4:192.0.2.0/24 include:_spf.provider.test ~all")
        zone.txt(f"sel._domainkey.{d}", key.record)
        zone.txt(f"_dmarc.{d}", "v=DMARC1; p=quarantine")
        body = f"From: a@{d}\r\nTo: b@example.cn\r\nSubject: s{i}\r\nDate: Mon, 02 Nov 2026 10:00:00 +0000\r\n\r\nhello {i}\r\n".encode()
        raw = bytes(dkim.sign(body, b"sel", d.encode(), key.private_pem)) + body
        msgs.append((d, parse(raw)))
    zone.txt("_spf.provider.test", "v=spf1 ip4:198.51.100.0/24 -all")
    with dns_server(zone) as server:
        s = Settings()
        s.dns = server.settings()
        an = AuthAnalyzer(AnalyzerEnv(settings=s))
        for label in ("cold", "warm"):
            times = []
            for d, m in msgs:
                env = Envelope(mail_from=f"a@{d}", rcpt_tos=["b@example.cn"], peer_ip="192.0.2.9", helo=f"mx.{d}")
                t0 = time.perf_counter()
                found = await an.analyze(AnalysisContext(message=m, envelope=env, settings=s))
                times.append(time.perf_counter() - t0)
                assert {f.symbol for f in found} >= {"SPF_PASS", "DKIM_PASS", "DMARC_PASS"}, [f.symbol for f in found]
            times.sort()
            print(
                f"{label}: {n} messages, median {1000 * statistics.median(times):.1f} ms, "
                f"p95 {1000 * times[int(0.95 * (n - 1))]:.1f} ms, {n / sum(times):.0f} messages/s (one at a time)"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=300)
    asyncio.run(run(ap.parse_args().messages))


if __name__ == "__main__":
    main()
