"""Cryptocurrency addresses in text: Bitcoin checksums verified, look-alike runs of letters refused."""

from __future__ import annotations

import pytest

from mailmoat.parse.wallets import wallet_address


@pytest.mark.parametrize(
    "addr",
    [
        "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",  # Base58Check, pay-to-key-hash
        "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",  # Base58Check, pay-to-script-hash
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",  # bech32 (BIP 173 test vector)
        "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",
        "bc1p5d7rjq7g6rdk2yhzks9smlaqtedr4dekq08ge8ztwac72sfr9rusxg3297",  # bech32m, taproot (BIP 350)
        "0x52908400098527886E0F7030069857D2E4169EE7",  # Ethereum
    ],
)
def test_valid_addresses_are_found_in_text(addr: str) -> None:
    assert wallet_address(f"Send the payment to this address:\n{addr}\nwithin 48 hours.") == addr


@pytest.mark.parametrize(
    "text",
    [
        "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb",  # one letter changed: the checksum fails
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5",
        "Your parcel 1Z999AA10123456784 is on its way",  # a courier's tracking number
        "order 3AB4567890123456789012345678, ref 1PMmc3Ry9PbE9WVnhSb2hodFdydEcw",
        "commit 0x52908400098527886E0F7030069857D2E4169EE7ff",  # longer hex: a hash, not an address
        "no address here",
    ],
)
def test_look_alikes_are_not_addresses(text: str) -> None:
    assert wallet_address(text) is None
