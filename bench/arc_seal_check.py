"""Seal every message of some corpora as the gateway hands it on, verify each seal as a receiver would,
and time the sealing beside the header edits it follows.

    .venv/bin/python bench/arc_seal_check.py ../shared/corpora [--limit N]

Prints, per corpus: messages, sealed, left unsealed (dkimpy found nothing to seal: a chain it
could not continue), errors (the message goes on unsealed), and seals that do not verify (none is
the target); then the median time of the header edits alone and with the seal, measured side by
side on the same messages.
"""

from __future__ import annotations

import argparse
import base64
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailmoat import metrics
from mailmoat.config import ArcSealSettings
from mailmoat.deliver.arc_seal import Sealer
from mailmoat.deliver.headers import prepare_base
from mailmoat.model import Action, Finding, Verdict

HOST = "mx.example.org"
# What the gateway's Authentication-Results say of a typical message from outside.
VERDICT = Verdict(Action.DELIVER, 1.0, [
    Finding("SPF_PASS", 0.0, "spf", "auth", "spf", data={"authres": {"method": "spf", "result": "pass", "props": {"smtp.mailfrom": "example.com"}}}),
    Finding("DKIM_PASS", 0.0, "dkim", "auth", "dkim", data={"authres": {"method": "dkim", "result": "pass", "props": {"header.d": "example.com"}}}),
], [])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpora", type=Path)
    ap.add_argument("--limit", type=int, default=0, help="at most N messages per corpus")
    args = ap.parse_args()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption())
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        return record if name.rstrip(b".") == b"arc._domainkey.example.org" else b""

    with tempfile.TemporaryDirectory() as tmp:
        key_file = Path(tmp) / "arc.pem"
        key_file.write_bytes(pem)
        sealer = Sealer(ArcSealSettings(enabled=True, domain="example.org", selector="arc", key_file=str(key_file)), HOST)
        edits: list[float] = []
        sealing: list[float] = []
        errors_before = 0
        print("| corpus | messages | sealed | left unsealed | errors | seals that do not verify |")
        print("|---|---:|---:|---:|---:|---:|")
        for corpus in sorted(p for p in args.corpora.iterdir() if p.is_dir()):
            files = sorted(f for f in corpus.rglob("*") if f.is_file() and not f.name.startswith((".", "README")))
            if args.limit:
                files = files[: args.limit]
            counts: Counter[str] = Counter()
            for f in files:
                raw = f.read_bytes()
                t0 = time.perf_counter()
                base = prepare_base(raw, VERDICT, authserv_id=HOST)
                t1 = time.perf_counter()
                sealed = sealer.seal(base)
                t2 = time.perf_counter()
                edits.append(t1 - t0)
                sealing.append(t2 - t0)
                counts["messages"] += 1
                if sealed == base:
                    counts["unsealed"] += 1
                    continue
                counts["sealed"] += 1
                cv, _results, _reason = dkim.arc_verify(sealed, dnsfunc=dnsfunc)
                if cv != dkim.CV_Pass:
                    counts["bad"] += 1
            errors_now = int(metrics.ARC_SEALS.labels(result="error")._value.get())
            counts["errors"], errors_before = errors_now - errors_before, errors_now
            print(f"| {corpus.name} | {counts['messages']:,} | {counts['sealed']:,} | {counts['unsealed'] - counts['errors']:,} "
                  f"| {counts['errors']:,} | {counts['bad']:,} |")
        if edits:
            a, b = statistics.median(edits) * 1000, statistics.median(sealing) * 1000
            print(f"\nmedian per message: header edits {a:.2f} ms; header edits and seal {b:.2f} ms ({b / a:.1f}x); "
                  f"p99 with the seal {sorted(sealing)[int(len(sealing) * 0.99)] * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
