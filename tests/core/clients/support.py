"""Registry files for the tests: keys, a self-signed certificate in a JWKS, a fast argon2id."""

from __future__ import annotations

import base64
import datetime
import json
import textwrap
from pathlib import Path
from typing import Any

import argon2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from jwt.algorithms import ECAlgorithm

from sidecar.adapters.config_files import LOCAL_FILES
from sidecar.core.clients.loading import load_registry
from sidecar.core.clients.model import Registry
from sidecar.settings import ConfigError

FAST_ARGON2 = argon2.PasswordHasher(time_cost=5, memory_cost=7168, parallelism=1)
SECRET = "p+ss%20w:rd é ✓"


def ec_jwk(**extra: Any) -> dict[str, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    return {**json.loads(ECAlgorithm.to_jwk(key.public_key())), **extra}


def self_signed_jwk() -> dict[str, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    der = cert.public_bytes(serialization.Encoding.DER)
    jwk: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "x5c": [base64.b64encode(der).decode()]}


def load(base: Path, text: str) -> Registry:
    path = base / "clients.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_registry(path, LOCAL_FILES)


def problems(base: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(base, text)
    return info.value.problems
