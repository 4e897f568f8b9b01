"""Certificate generation and SHA-256 fingerprints for the relay's self-signed certificate.

Invariants:
- Private keys are written with mode 0600 from the moment the file exists (created with
  ``os.open(..., 0o600)``, never chmod-ed afterwards) and never overwritten silently.
- A fingerprint is the SHA-256 of the certificate's DER bytes. Its printable form is
  ``SHA256:`` followed by unpadded base64 (as ssh prints host keys); :func:`parse_fingerprint`
  also accepts hex, with or without colons, so users can paste either.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

CERT_FILE_NAME = "relay-cert.pem"
KEY_FILE_NAME = "relay-key.pem"
DEFAULT_VALIDITY_DAYS = 3650


@dataclass(frozen=True)
class CertificatePair:
    """Paths of a certificate and its key, and the certificate's fingerprint."""

    cert_path: Path
    key_path: Path
    fingerprint: str


def generate_self_signed(
    cert_path: Path,
    key_path: Path,
    *,
    common_name: str = "parley-relay",
    hostnames: tuple[str, ...] = ("localhost", "127.0.0.1", "::1"),
    validity_days: int = DEFAULT_VALIDITY_DAYS,
) -> CertificatePair:
    """Create an ECDSA P-256 key and a self-signed certificate; refuse to overwrite either."""
    # Imported here: loading ``cryptography`` takes 60 ms and a few MiB, which the relay's
    # start only pays when it has to create its certificate.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    for path in (cert_path, key_path):
        if path.exists():
            raise FileExistsError(f"{path} exists; remove it first to make a new certificate")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    alt_names: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            import ipaddress

            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=validity_days))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_path.parent.mkdir(parents=True, exist_ok=True)
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as key_file:
        key_file.write(key_pem)
    fd = os.open(cert_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as cert_file:
        cert_file.write(cert_pem)
    return CertificatePair(
        cert_path, key_path, fingerprint_of_der(cert.public_bytes(serialization.Encoding.DER))
    )


def ensure_certificate(data_dir: Path) -> tuple[CertificatePair, bool]:
    """The relay's default certificate in ``data_dir``, generated if missing.

    Returns the pair and whether it was created now.
    """
    cert_path = data_dir / CERT_FILE_NAME
    key_path = data_dir / KEY_FILE_NAME
    if cert_path.exists() and key_path.exists():
        return CertificatePair(cert_path, key_path, fingerprint_of_pem_file(cert_path)), False
    if cert_path.exists() != key_path.exists():
        missing = key_path if cert_path.exists() else cert_path
        raise FileNotFoundError(
            f"{missing} is missing but its partner exists; restore it or remove both "
            "files to generate a new certificate (clients will then see a changed fingerprint)"
        )
    return generate_self_signed(cert_path, key_path), True


def fingerprint_of_der(der: bytes) -> str:
    """Printable SHA-256 fingerprint (``SHA256:<base64>``) of DER certificate bytes."""
    digest = hashlib.sha256(der).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


_PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----"
)


def load_certificate_der(cert_path: Path) -> bytes:
    """DER bytes of the first certificate in a PEM file (ValueError if it has none)."""
    match = _PEM_CERTIFICATE.search(cert_path.read_bytes())
    if match is None:
        raise ValueError(f"{cert_path} holds no PEM certificate")
    try:
        der = base64.b64decode(b"".join(match.group(1).split()), validate=True)
    except binascii.Error:
        raise ValueError(f"{cert_path} holds a damaged PEM certificate") from None
    if not der.startswith(b"\x30"):  # a DER certificate is a SEQUENCE
        raise ValueError(f"{cert_path} holds a damaged PEM certificate")
    return der


def fingerprint_of_pem_file(cert_path: Path) -> str:
    """Printable SHA-256 fingerprint of the certificate in a PEM file."""
    return fingerprint_of_der(load_certificate_der(cert_path))


_HEX = re.compile(r"(?:[0-9a-fA-F]{2}:?){32}")


def parse_fingerprint(text: str) -> bytes:
    """The 32 digest bytes of a user-supplied fingerprint (``SHA256:b64`` or hex).

    Raises ``ValueError`` with a message that says which forms are accepted.
    """
    value = text.strip()
    if value.upper().startswith("SHA256:"):
        value = value[len("SHA256:") :]
        hex_candidate = value
        if _HEX.fullmatch(hex_candidate) and len(hex_candidate.replace(":", "")) == 64:
            return bytes.fromhex(hex_candidate.replace(":", ""))
        try:
            digest = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
        except binascii.Error as exc:
            raise ValueError("fingerprint after SHA256: is not base64") from exc
        if len(digest) != 32:
            raise ValueError("a SHA-256 fingerprint has 32 bytes")
        return digest
    if _HEX.fullmatch(value) and len(value.replace(":", "")) == 64:
        return bytes.fromhex(value.replace(":", ""))
    raise ValueError("expected SHA256:<base64> (as printed by parley-relay) or 64 hex digits")


def format_fingerprint(digest: bytes) -> str:
    """Printable form of 32 digest bytes."""
    if len(digest) != 32:
        raise ValueError("a SHA-256 fingerprint has 32 bytes")
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def short_fingerprint(fingerprint: str) -> str:
    """A short form for status bars: the first 12 characters after ``SHA256:``."""
    return fingerprint.split(":", 1)[-1][:12]
