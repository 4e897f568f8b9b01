"""Certificate generation and fingerprints."""

from __future__ import annotations

import base64
import hashlib
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from certs import (
    ensure_certificate,
    fingerprint_of_pem_file,
    format_fingerprint,
    generate_self_signed,
    load_certificate_der,
    parse_fingerprint,
)


def test_generate_writes_p256_cert_and_private_key_0600(tmp_path: Path) -> None:
    pair = generate_self_signed(tmp_path / "c.pem", tmp_path / "k.pem")
    assert stat.S_IMODE((tmp_path / "k.pem").stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate((tmp_path / "c.pem").read_bytes())
    public_key = cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert public_key.curve.name == "secp256r1"
    digest = hashlib.sha256(load_certificate_der(pair.cert_path)).digest()
    assert pair.fingerprint == "SHA256:" + base64.b64encode(digest).decode().rstrip("=")
    assert fingerprint_of_pem_file(pair.cert_path) == pair.fingerprint


def test_generate_refuses_to_overwrite(tmp_path: Path) -> None:
    generate_self_signed(tmp_path / "c.pem", tmp_path / "k.pem")
    with pytest.raises(FileExistsError):
        generate_self_signed(tmp_path / "c.pem", tmp_path / "k.pem")


def test_ensure_certificate_creates_once(tmp_path: Path) -> None:
    first, created = ensure_certificate(tmp_path)
    second, created_again = ensure_certificate(tmp_path)
    assert created and not created_again
    assert first.fingerprint == second.fingerprint


def test_ensure_certificate_refuses_a_lone_half(tmp_path: Path) -> None:
    pair, _ = ensure_certificate(tmp_path)
    pair.key_path.unlink()
    with pytest.raises(FileNotFoundError, match="remove both"):
        ensure_certificate(tmp_path)


def test_parse_fingerprint_accepts_both_printed_forms(tmp_path: Path) -> None:
    pair = generate_self_signed(tmp_path / "c.pem", tmp_path / "k.pem")
    digest = hashlib.sha256(load_certificate_der(pair.cert_path)).digest()
    assert parse_fingerprint(pair.fingerprint) == digest
    assert parse_fingerprint(digest.hex()) == digest
    assert parse_fingerprint(":".join(f"{b:02X}" for b in digest)) == digest
    assert format_fingerprint(digest) == pair.fingerprint
    for bad in ["", "SHA256:abc", "SHA1:" + digest.hex(), "zz" * 32]:
        with pytest.raises(ValueError):
            parse_fingerprint(bad)
