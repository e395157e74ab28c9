"""ARC sealing (RFC 8617) of the copy handed to the mail system: the gateway's Authentication-Results, signed over the message as it leaves (after the banner and subject edits)."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from mailmoat import metrics
from mailmoat.config import ArcSealSettings, ConfigError

log = logging.getLogger("mailmoat.arc")

MIN_RSA_BITS = 2048  # receivers (Gmail, Microsoft 365) ignore or distrust shorter keys


def load_key(path: str) -> bytes:
    """The PEM private key at `path` (PKCS#1 or PKCS#8, as openssl writes them), checked to be RSA of
    at least MIN_RSA_BITS, written as the PKCS#1 PEM that dkimpy reads; ConfigError if not."""
    try:
        pem = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"arc_seal.key_file {path}: {exc.strerror or exc}") from exc
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"arc_seal.key_file {path}: not an unencrypted PEM private key ({exc})") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(f"arc_seal.key_file {path}: an RSA key is needed (ARC verifiers expect rsa-sha256)")
    if key.key_size < MIN_RSA_BITS:
        raise ConfigError(f"arc_seal.key_file {path}: {key.key_size}-bit RSA; use {MIN_RSA_BITS} bits or more")
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def public_key_b64(pem: bytes) -> str:
    """The p= value of the DNS record that publishes the key's public half."""
    import base64

    key = serialization.load_pem_private_key(pem, password=None)
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


@functools.lru_cache(maxsize=8)
def _openssl_key(modulus: int, public_exponent: int, private_exponent: int, p: int, q: int, dmp1: int, dmq1: int,
                 iqmp: int) -> rsa.RSAPrivateKey:
    return rsa.RSAPrivateNumbers(p, q, private_exponent, dmp1, dmq1, iqmp, rsa.RSAPublicNumbers(public_exponent, modulus)).private_key()


_PREHASHED = {"sha256": hashes.SHA256, "sha1": hashes.SHA1}


def _rsa_sign(digest: Any, private_key: dict[str, int]) -> bytes:
    """dkimpy's RSASSA-PKCS1-v1_5 signature, made by OpenSSL: the same bytes (the scheme is
    deterministic), in about a tenth of the time of dkimpy's pure-Python arithmetic, which cost 7 ms
    per signature and a seal makes two."""
    k = private_key
    key = _openssl_key(k["modulus"], k["publicExponent"], k["privateExponent"], k["prime1"], k["prime2"],
                       k["exponent1"], k["exponent2"], k["coefficient"])
    return key.sign(digest.digest(), padding.PKCS1v15(), utils.Prehashed(_PREHASHED[digest.name]()))


def _use_openssl_for_rsa() -> None:
    dkim.RSASSA_PKCS1_v1_5_sign = _rsa_sign  # dkimpy signs through this module-level name


class Sealer:
    """Adds the next ARC set to a message that carries this gateway's Authentication-Results."""

    def __init__(self, cfg: ArcSealSettings, authserv_id: str) -> None:
        self.cfg = cfg
        self.key = load_key(cfg.key_file)
        self.srv_id = authserv_id.encode()
        _use_openssl_for_rsa()

    def applies(self, direction: str) -> bool:
        return direction in self.cfg.directions

    def seal(self, base: bytes) -> bytes:
        """`base` with the new ARC set on top; `base` unchanged when it cannot be sealed (no From
        header, a chain already at its limit, or one the gateway could not verify: RFC 8617 forbids
        continuing it with cv=none) or its headers are too malformed to sign. Never raises: a seal is
        never worth a message."""
        try:
            lines = dkim.arc_sign(base, self.cfg.selector.encode(), self.cfg.domain.encode(), self.key, self.srv_id,
                                  linesep=b"\r\n" if b"\r\n" in base[:2048] else b"\n")
        except dkim.ParameterError as exc:  # no From header, a chain at its 50-set limit: nothing RFC 8617 lets us seal
            log.info("ARC seal left out: %s", exc)
            metrics.ARC_SEALS.labels(result="left_out").inc()
            return base
        except Exception as exc:  # dkimpy raises several types on malformed headers; the message goes on unsealed
            log.warning("ARC seal left out: %s", exc)
            metrics.ARC_SEALS.labels(result="error").inc()
            return base
        if not lines:  # dkimpy: no chain result to carry on (an earlier chain that was not verified)
            metrics.ARC_SEALS.labels(result="left_out").inc()
            return base
        metrics.ARC_SEALS.labels(result="sealed").inc()
        return b"".join(lines) + base
