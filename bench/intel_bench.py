"""Indicator index at feed scale: load time, reload time and lookup rate.

Usage: .venv/bin/python bench/intel_bench.py [--domains N] [--urls N] [--cidrs N]

Writes synthetic feeds (a plain domain list, a URL list, a CSV of CIDR ranges and a STIX bundle)
to a temporary directory, loads them into IntelIndex, then times lookups of hosts, URLs and IPs
that mostly miss (as real mail does).
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from mailmoat.intel import IntelIndex


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--domains", type=int, default=200_000)
    ap.add_argument("--urls", type=int, default=50_000)
    ap.add_argument("--cidrs", type=int, default=20_000)
    ap.add_argument("--lookups", type=int, default=50_000)
    args = ap.parse_args()
    rng = random.Random(7)

    def word() -> str:
        return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(6, 14)))

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        domains = [f"{word()}.{rng.choice(['com', 'net', 'top', 'xyz', 'cn'])}" for _ in range(args.domains)]
        (d / "phish-domains.txt").write_text("\n".join(domains) + "\n", encoding="utf-8")
        (d / "urls.txt").write_text("\n".join(f"https://{word()}.example/{word()}" for _ in range(args.urls)) + "\n", encoding="utf-8")
        rows = ["kind,value,source"] + [
            f"ip,{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.0/{rng.choice([16, 20, 24, 28])},bench"
            for _ in range(args.cidrs)
        ]
        (d / "ips.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
        objs = [{"type": "indicator", "id": f"indicator--{i}", "pattern": f"[domain-name:value = '{word()}.example']"} for i in range(10_000)]
        (d / "bundle.json").write_text(json.dumps({"type": "bundle", "objects": objs}), encoding="utf-8")

        t0 = time.perf_counter()
        idx = IntelIndex([str(d)], check_interval=0)
        load = time.perf_counter() - t0
        print(f"load: {len(idx):,} indicators {idx.counts} in {load:.2f} s")

        (d / "urls.txt").write_text(f"https://{word()}.example/x\n", encoding="utf-8")
        t0 = time.perf_counter()
        idx.refresh()
        print(f"reload after one file changed: {time.perf_counter() - t0:.2f} s")

        hosts = [f"www.{rng.choice(domains)}" if i % 50 == 0 else f"mail.{word()}.com" for i in range(args.lookups)]
        t0 = time.perf_counter()
        hits = sum(idx.match_domain(h) is not None for h in hosts)
        dt = time.perf_counter() - t0
        print(f"match_domain: {args.lookups / dt:,.0f}/s ({hits} hits)")
        urls = [f"https://{word()}.example/{word()}?a=1" for _ in range(args.lookups)]
        t0 = time.perf_counter()
        sum(idx.match_url(u) is not None for u in urls)
        print(f"match_url: {args.lookups / (time.perf_counter() - t0):,.0f}/s")
        ips = [f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}" for _ in range(args.lookups)]
        t0 = time.perf_counter()
        hits = sum(idx.match_ip(ip) is not None for ip in ips)
        print(f"match_ip over {args.cidrs:,} ranges: {args.lookups / (time.perf_counter() - t0):,.0f}/s ({hits} hits)")


if __name__ == "__main__":
    main()
