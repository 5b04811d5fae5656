"""Reading the registry file (`clients.registry_file`): one `[[clients]]` table per client, keys
named as the client metadata of RFC 7591 §2, RFC 8705 §2.1.2 / §3.4 and RFC 9449 §5.2 where
one exists; what each `token_endpoint_auth_method` needs, and nothing more."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any, Final

from cryptography import x509
from cryptography.x509 import verification

from sidecar.core.clients.model import DEFAULT_GRANT_TYPES, Client, Registry
from sidecar.core.clients.secret_policy import secret_file, secret_hash
from sidecar.core.clients.subjects import SubjectMatch
from sidecar.core.clients.tables import TableReader
from sidecar.core.config_files import file_text
from sidecar.core.jose.algorithms import HMAC_ALGORITHMS, hmac_key_long_enough
from sidecar.core.jose.key_sets import ASYMMETRIC_ALGORITHMS
from sidecar.core.syntax import VSCHAR  # RFC 6749 Appendix A.1: client_id = *VSCHAR
from sidecar.ports import ConfigFiles
from sidecar.settings import GRANT_TYPES, ConfigError

AUTH_METHODS: Final = (
    "client_secret_basic",
    "client_secret_post",
    "client_secret_jwt",
    "private_key_jwt",
    "tls_client_auth",
    "self_signed_tls_client_auth",
    "none",
    # draft-ietf-oauth-attestation-based-client-auth: the attester vouches for the instance.
    "attest_jwt_client_auth",
    "attest_jwt_client_auth_dpop",
)
SECRET_KEYS: Final = ("client_secret_file", "client_secret_hash")
JWKS_KEYS: Final = ("jwks", "jwks_file", "jwks_uri")
SUBJECT_KEYS: Final = (
    "tls_client_auth_subject_dn",
    "tls_client_auth_san_dns",
    "tls_client_auth_san_uri",
    "tls_client_auth_san_ip",
    "tls_client_auth_san_email",
)
# What each method needs ("one of" groups); every other method-specific key is refused, so
# that a secret registered for a client that never presents it cannot hide a typo.
_NEEDS: Final[Mapping[str, tuple[tuple[str, ...], ...]]] = {
    "client_secret_basic": (SECRET_KEYS,),
    "client_secret_post": (SECRET_KEYS,),
    # HMAC needs the secret in clear: a hash cannot sign (OpenID Connect Core §9).
    "client_secret_jwt": (("client_secret_file",),),
    "private_key_jwt": (JWKS_KEYS,),
    "tls_client_auth": (SUBJECT_KEYS, ("tls_client_auth_ca_file",)),
    "self_signed_tls_client_auth": (JWKS_KEYS,),
    "none": (),
    "attest_jwt_client_auth": (),
    "attest_jwt_client_auth_dpop": (),
}
_METHOD_KEYS: Final = frozenset({*SECRET_KEYS, *JWKS_KEYS, *SUBJECT_KEYS,
                                 "tls_client_auth_ca_file", "token_endpoint_auth_signing_alg"})
_KNOWN_KEYS: Final = frozenset({
    "client_id", "token_endpoint_auth_method", "grant_types", *_METHOD_KEYS,
    "dpop_bound_access_tokens", "dpop_nonce_required",
    "tls_client_certificate_bound_access_tokens", "access_token_duration",
    "refresh_token_duration", "properties", "jwt_at_claims", "attestation_additional_signal",
})


def load_registry(path: str | PurePath, files: ConfigFiles) -> Registry:
    """Read (through `files`) and check the registry file and every file it names; raise
    ConfigError."""
    path = PurePath(path)
    try:
        raw = tomllib.loads(file_text(files, path))
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from exc
    return registry_from_mapping(raw, path.parent, files, source=str(path))


def registry_from_mapping(raw: Mapping[str, Any], base_dir: PurePath, files: ConfigFiles,
                          source: str = "") -> Registry:
    problems: list[str] = [f"{name}: unknown key (known: clients)"
                           for name in raw if name != "clients"]
    tables = raw.get("clients", [])
    if not isinstance(tables, list):
        raise ConfigError([*problems, "clients: expected an array of tables ([[clients]])"])
    clients: dict[str, Client] = {}
    first_seen: dict[str, int] = {}
    for index, table in enumerate(tables):
        prefix = f"clients[{index}]"
        if not isinstance(table, Mapping):
            problems.append(f"{prefix}: expected a table")
            continue
        client = _client(TableReader(table, prefix, problems, base_dir, files))
        client_id = table.get("client_id")
        if isinstance(client_id, str):
            # Checked even when either table has other problems: all of them are reported.
            if client_id in first_seen:
                problems.append(f"{prefix}.client_id: duplicate of "
                                f"clients[{first_seen[client_id]}] ({client_id!r})")
                continue
            first_seen[client_id] = index
        if client is not None:
            clients[client.client_id] = client
    if problems:
        raise ConfigError(problems)
    return Registry(clients, source)


def _client(reader: TableReader) -> Client | None:
    reader.unknown_keys(_KNOWN_KEYS)
    client_id = reader.string("client_id", required=True)
    if client_id is not None and not VSCHAR.fullmatch(client_id):
        reader.problem("client_id", "has characters outside RFC 6749 A.1 (VSCHAR)")
    method = reader.string("token_endpoint_auth_method", required=True)
    if method is not None and method not in AUTH_METHODS:
        reader.problem("token_endpoint_auth_method",
                       f"unknown method {method!r}; known: {', '.join(AUTH_METHODS)}")
        method = None
    grant_types = _grant_types(reader, method)
    values: dict[str, Any] = _method_material(reader, method) if method is not None else {}
    for key in ("dpop_bound_access_tokens", "tls_client_certificate_bound_access_tokens",
                "attestation_additional_signal"):
        values[key] = bool(reader.boolean(key))
    values["dpop_nonce_required"] = reader.boolean("dpop_nonce_required")
    for key in ("access_token_duration", "refresh_token_duration"):
        values[key] = reader.positive_int(key)
    for key in ("properties", "jwt_at_claims"):
        values[key] = reader.json_object(key)
    if not reader.ok or client_id is None or method is None:
        return None
    return Client(client_id=client_id, token_endpoint_auth_method=method,
                  grant_types=grant_types or DEFAULT_GRANT_TYPES, **values)


def _grant_types(reader: TableReader, method: str | None) -> tuple[str, ...] | None:
    grant_types = reader.strings("grant_types")
    if grant_types is None:
        return None
    unknown = [g for g in grant_types if g not in GRANT_TYPES]
    if unknown:
        reader.problem("grant_types", f"unknown grant types {unknown!r}")
    if not grant_types:
        reader.problem("grant_types", "must not be empty (omit it for authorization_code)")
    if method == "none" and "client_credentials" in grant_types:
        # RFC 6749 §4.4: "The client credentials grant type MUST only be used by
        # confidential clients."
        reader.problem("grant_types", "client_credentials needs a confidential client, not "
                       "token_endpoint_auth_method 'none'")
    return grant_types


def _method_material(reader: TableReader, method: str) -> dict[str, Any]:
    needs = _NEEDS[method]
    allowed = {key for group in needs for key in group}
    if method in ("client_secret_jwt", "private_key_jwt"):
        allowed.add("token_endpoint_auth_signing_alg")
    for key in sorted(_METHOD_KEYS - allowed):
        if reader.has(key):
            hint = " (client_secret_jwt signs with the secret itself: use client_secret_file)" \
                if method == "client_secret_jwt" and key == "client_secret_hash" else ""
            reader.problem(key, f"not used by token_endpoint_auth_method {method!r}{hint}")
    for group in needs:
        present = [key for key in group if reader.has(key)]
        if len(present) != 1:
            what = "is required" if len(group) == 1 else f"needs exactly one of {', '.join(group)}"
            reader.problem(present[1] if len(present) > 1 else group[0],
                           f"token_endpoint_auth_method {method!r} {what}")
    material: dict[str, Any] = {}
    if reader.has("client_secret_file"):
        material.update(secret_file(reader))
        secret = material.get("client_secret")
        if method == "client_secret_jwt" and secret is not None \
                and not hmac_key_long_enough("HS256", secret.encode("utf-8")):
            reader.problem("client_secret_file", "client_secret_jwt needs a secret of at "
                           "least 32 bytes (RFC 7518 §3.2, for HS256)")
    if reader.has("client_secret_hash"):
        material["client_secret_hash"] = secret_hash(reader)
    if reader.has("jwks") or reader.has("jwks_file"):
        material["jwks"] = reader.jwks(need_x5c=method == "self_signed_tls_client_auth")
    if reader.has("jwks_uri"):
        material["jwks_uri"] = reader.http_url("jwks_uri")
    for key in SUBJECT_KEYS:
        if reader.has(key):
            material["tls_client_auth_subject"] = _subject(reader, key)
    if reader.has("tls_client_auth_ca_file"):
        material.update(_ca_bundle(reader))
    if reader.has("token_endpoint_auth_signing_alg"):
        material["token_endpoint_auth_signing_alg"] = _signing_alg(reader, method, material)
    return material


def _subject(reader: TableReader, key: str) -> SubjectMatch | None:
    value = reader.string(key)
    if value is None:
        return None
    try:
        return SubjectMatch.parse(key, value)
    except ValueError as exc:
        reader.problem(key, f"{value!r}: {exc}")
        return None


def _ca_bundle(reader: TableReader) -> dict[str, Any]:
    data = reader.file_bytes("tls_client_auth_ca_file")
    if data is None:
        return {}
    try:
        certificates = tuple(x509.load_pem_x509_certificates(data))
    except ValueError:
        reader.problem("tls_client_auth_ca_file", "holds no PEM certificate")
        return {}
    return {"tls_client_auth_ca_file": str(reader.path("tls_client_auth_ca_file")),
            "tls_client_auth_ca": certificates,
            "tls_trust_store": verification.Store(list(certificates))}


def _signing_alg(reader: TableReader, method: str, material: Mapping[str, Any]) -> str | None:
    alg = reader.string("token_endpoint_auth_signing_alg")
    if alg is None:
        return None
    if method == "client_secret_jwt":
        if alg not in HMAC_ALGORITHMS:
            reader.problem("token_endpoint_auth_signing_alg",
                           f"client_secret_jwt needs one of {', '.join(HMAC_ALGORITHMS)}")
            return None
        secret = material.get("client_secret")
        if secret is not None and not hmac_key_long_enough(alg, secret.encode("utf-8")):
            reader.problem("client_secret_file", f"the secret is shorter than {alg} needs "
                           "(RFC 7518 §3.2: at least the hash size)")
        return alg
    if alg not in ASYMMETRIC_ALGORITHMS:
        reader.problem("token_endpoint_auth_signing_alg",
                       f"private_key_jwt needs one of {', '.join(ASYMMETRIC_ALGORITHMS)}")
        return None
    return alg
