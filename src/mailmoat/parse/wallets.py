"""Cryptocurrency payment addresses in text: Bitcoin (Base58Check and bech32, checksums verified) and Ethereum.

Extortion and advance-fee mail asks to be paid to one. A Bitcoin address carries a checksum, so a
run of letters that merely looks like one (a tracking code, a hash) is not taken for it.
"""

from __future__ import annotations

import hashlib
import re

MAX_TEXT = 200_000

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}
_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32_INDEX = {c: i for i, c in enumerate(_BECH32)}

# Legacy (1...) and script (3...) addresses; bech32 segwit (bc1q...) and taproot (bc1p...); 0x + 40
# hex digits for Ethereum and the chains that copy its addresses.
_CANDIDATE = re.compile(
    r"(?<![0-9A-Za-z])(?:[13][1-9A-HJ-NP-Za-km-z]{25,34}|bc1[02-9ac-hj-np-z]{11,71}|BC1[02-9AC-HJ-NP-Z]{11,71}"
    r"|0x[0-9a-fA-F]{40})(?![0-9A-Za-z])"
)


def _base58check(addr: str) -> bool:
    n = 0
    for c in addr:
        n = n * 58 + _B58_INDEX[c]
    raw = n.to_bytes(25, "big") if n.bit_length() <= 200 else b""
    if len(raw) != 25 or raw[0] not in (0x00, 0x05):  # mainnet pay-to-key-hash and pay-to-script-hash
        return False
    return hashlib.sha256(hashlib.sha256(raw[:21]).digest()).digest()[:4] == raw[21:]


def _bech32_polymod(values: list[int]) -> int:
    gen = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= gen[i] if (top >> i) & 1 else 0
    return chk


def _bech32(addr: str) -> bool:
    """BIP 173 (bech32, witness version 0) or BIP 350 (bech32m, version 1 and later) checksum."""
    addr = addr.lower()
    data = [_BECH32_INDEX[c] for c in addr[3:]]
    hrp = [ord(c) >> 5 for c in "bc"] + [0] + [ord(c) & 31 for c in "bc"]
    const = _bech32_polymod(hrp + data)
    version = data[0] if data else -1
    return (version == 0 and const == 1) or (1 <= version <= 16 and const == 0x2BC830A3)


def wallet_address(text: str) -> str | None:
    """The first cryptocurrency address in `text` whose form (and checksum, for Bitcoin) is valid."""
    for m in _CANDIDATE.finditer(text[:MAX_TEXT]):
        addr = m.group(0)
        if addr[:2] == "0x":
            return addr
        if addr[:3].lower() == "bc1":
            if _bech32(addr):
                return addr
        elif _base58check(addr):
            return addr
    return None
