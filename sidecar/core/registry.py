"""The client registry (`clients.registry_file`): what each client registered, read and checked.

One `[[clients]]` table per client, keys named as the client metadata of RFC 7591 §2,
RFC 8705 §2.1.2 / §3.4 and RFC 9449 §5.2 where one exists. `load_registry` reads every file the
registry names (client secrets, CA bundles, JWKS files) *now*, so a reload sees a rotated
Kubernetes Secret; it collects every problem, each named `clients[<i>].<key>: ...`, and raises
one `ConfigError` with all of them. The caller keeps the registry in force when a new one does
not load.

Relative file paths are relative to the registry file's directory (the registry and the files
it names are usually mounted together).

`SubjectMatch` (RFC 8705 §2.1.2) lives here because the registered value is parsed at load
time: a `tls_client_auth_subject_dn` that is not an RFC 4514 string is a configuration error,
not a per-request surprise.
"""

from __future__ import annotations

import ipaddress
import json
import re
import tomllib
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, TypeVar
from urllib.parse import urlsplit

import argon2
from cryptography import x509
from cryptography.x509 import verification
from cryptography.x509.oid import NameOID

from sidecar.core.jose.algorithms import HMAC_ALGORITHMS, hmac_key_long_enough
from sidecar.core.jose.key_sets import ASYMMETRIC_ALGORITHMS, JwkEntry, JwksError, parse_jwks
from sidecar.settings import GRANT_TYPES, ConfigError

T = TypeVar("T")

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
# RFC 7591 §2: "If omitted, the default is that the client will use only the
# authorization_code Grant Type."
DEFAULT_GRANT_TYPES: Final = ("authorization_code",)

MAX_SECRET_FILE_BYTES: Final = 4096
# Bounds on argon2id parameters. The floor is OWASP's Password Storage Cheat Sheet (its
# weakest equivalent setting is m=7168 KiB, t=5; all of its settings have m*t >= 35840); the
# ceiling bounds the memory and time one verification can take, since failed verifications
# are not cached and anyone can ask for one.
ARGON2_MIN_MEMORY_KIB: Final = 7168
ARGON2_MIN_MEMORY_TIME: Final = 35840
ARGON2_MAX_MEMORY_KIB: Final = 262144
ARGON2_MAX_TIME_COST: Final = 16
ARGON2_MAX_PARALLELISM: Final = 16

# RFC 6749 Appendix A.1: client_id = *VSCHAR.
_VSCHAR: Final = re.compile(r"[\x20-\x7e]+")


# ---------------------------------------------------------------------------------------
# Subject matching for tls_client_auth (RFC 8705 §2.1.2).

SubjectKind = Literal["subject_dn", "san_dns", "san_uri", "san_ip", "san_email"]
NormalisedDn = tuple[frozenset[tuple[str, str]], ...]


@dataclass(frozen=True, slots=True)
class SubjectMatch:
    """The one expected subject of a `tls_client_auth` client, matched on the leaf only."""

    kind: SubjectKind
    value: str  # as registered
    dn: NormalisedDn = ()  # subject_dn: RDNs in certificate (RDNSequence) order
    ip: bytes = b""  # san_ip: the address in binary form (RFC 5952 §8)

    @classmethod
    def parse(cls, key: str, value: str) -> SubjectMatch:
        """Raises ValueError naming what is wrong with `value`."""
        kind: SubjectKind = key.removeprefix("tls_client_auth_")  # type: ignore[assignment]
        if kind == "subject_dn":
            return cls(kind, value, dn=parse_dn(value))
        if kind == "san_ip":
            return cls(kind, value, ip=ipaddress.ip_address(value).packed)
        if not value or not value.isprintable():
            raise ValueError("empty or not printable")
        if kind == "san_email" and "@" not in value:
            raise ValueError("not an email address")
        return cls(kind, value)

    def matches(self, certificate: x509.Certificate) -> bool:
        if self.kind == "subject_dn":
            return normalise_name(certificate.subject) == self.dn
        names = _san(certificate)
        if self.kind == "san_dns":
            # RFC 5280 §7.2 / RFC 4343: DNS names compare case-insensitively.
            wanted = self.value.lower().rstrip(".")
            return any(n.lower().rstrip(".") == wanted
                       for n in names.get_values_for_type(x509.DNSName))
        if self.kind == "san_uri":
            return self.value in names.get_values_for_type(x509.UniformResourceIdentifier)
        if self.kind == "san_ip":
            return any(isinstance(a, ipaddress.IPv4Address | ipaddress.IPv6Address)
                       and a.packed == self.ip
                       for a in names.get_values_for_type(x509.IPAddress))
        return any(_same_mailbox(self.value, m)
                   for m in names.get_values_for_type(x509.RFC822Name))


def _san(certificate: x509.Certificate) -> x509.SubjectAlternativeName:
    try:
        return certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return x509.SubjectAlternativeName([])


def _same_mailbox(registered: str, presented: str) -> bool:
    # RFC 5280 §7.5: the local part is case-sensitive, the host part is not.
    local_a, _, host_a = registered.rpartition("@")
    local_b, _, host_b = presented.rpartition("@")
    return local_a == local_b and host_a.lower() == host_b.lower()


# RFC 4514 §3 names, and the other attribute types found in client certificate subjects.
_ATTRIBUTE_TYPES: Final[Mapping[str, str]] = {
    name: oid.dotted_string for name, oid in {
        "cn": NameOID.COMMON_NAME, "l": NameOID.LOCALITY_NAME,
        "st": NameOID.STATE_OR_PROVINCE_NAME, "o": NameOID.ORGANIZATION_NAME,
        "ou": NameOID.ORGANIZATIONAL_UNIT_NAME, "c": NameOID.COUNTRY_NAME,
        "street": NameOID.STREET_ADDRESS, "dc": NameOID.DOMAIN_COMPONENT,
        "uid": NameOID.USER_ID, "emailaddress": NameOID.EMAIL_ADDRESS,
        "email": NameOID.EMAIL_ADDRESS, "e": NameOID.EMAIL_ADDRESS,  # OpenSSL, Java
        "serialnumber": NameOID.SERIAL_NUMBER,
        "sn": NameOID.SURNAME, "givenname": NameOID.GIVEN_NAME, "title": NameOID.TITLE,
        "initials": NameOID.INITIALS, "generationqualifier": NameOID.GENERATION_QUALIFIER,
        "dnqualifier": NameOID.DN_QUALIFIER, "pseudonym": NameOID.PSEUDONYM,
        "postalcode": NameOID.POSTAL_CODE, "businesscategory": NameOID.BUSINESS_CATEGORY,
        "organizationidentifier": NameOID.ORGANIZATION_IDENTIFIER,
    }.items()
}
_DESCR: Final = re.compile(r"[A-Za-z][A-Za-z0-9-]*")
_NUMERICOID: Final = re.compile(r"(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))+")
_HEXPAIR: Final = re.compile(r"[0-9A-Fa-f]{2}")
_ESCAPABLE: Final = frozenset(' "#+,;<=>\\')
_MUST_ESCAPE: Final = frozenset('";<>')
# BER string types a `#hexstring` value may hold (X.520 DirectoryString and friends).
_BER_STRINGS: Final[Mapping[int, str]] = {0x0C: "utf-8", 0x12: "ascii", 0x13: "ascii",
                                          0x16: "ascii", 0x14: "latin-1", 0x1E: "utf-16-be",
                                          0x1C: "utf-32-be"}


def prepare(value: str) -> str:
    """The comparison form of an attribute value: caseIgnoreMatch (RFC 4517 §4.2.11) after
    RFC 4518 string preparation - NFKC, case folding, insignificant space handling (leading and
    trailing spaces dropped, inner runs made one). It is the matching rule of every attribute
    type RFC 4514 §3 names, and of emailAddress and serialNumber."""
    return " ".join(unicodedata.normalize("NFKC", value).casefold().split())


def normalise_name(name: x509.Name) -> NormalisedDn:
    return tuple(
        frozenset((a.oid.dotted_string,
                   prepare(a.value) if isinstance(a.value, str) else "#" + a.value.hex())
                  for a in rdn)
        for rdn in name.rdns)


def parse_dn(text: str) -> NormalisedDn:
    """An RFC 4514 string to normalised RDNs in RDNSequence order (§2.1: the string lists
    them last first). Attribute types are case-insensitive (§3). Spaces around `,` `+` `=` are
    tolerated, as RFC 4514 §4 allows readers to. Raises ValueError."""
    rdns: list[frozenset[tuple[str, str]]] = []
    current: set[tuple[str, str]] = set()
    position, end = 0, len(text)
    if not text.strip():
        raise ValueError("an empty DN")
    while True:
        equals = text.find("=", position)
        if equals == -1:
            raise ValueError(f"no '=' after position {position}")
        oid = _attribute_type(text[position:equals].strip())
        value, position = _attribute_value(text, equals + 1)
        if (oid, value) in current:
            raise ValueError("an attribute repeats within one RDN")
        current.add((oid, value))
        if position == end or text[position] == ",":
            rdns.append(frozenset(current))
            current = set()
        if position == end:
            break
        position += 1  # past "," or "+"
    return tuple(reversed(rdns))


def _attribute_type(name: str) -> str:
    if _NUMERICOID.fullmatch(name):
        return name
    oid = _ATTRIBUTE_TYPES.get(name.lower()) if _DESCR.fullmatch(name) else None
    if oid is None:
        raise ValueError(f"unknown attribute type {name!r} (use a name of RFC 4514 §3 or an "
                         "OID such as 2.5.4.3)")
    return oid


def _attribute_value(text: str, position: int) -> tuple[str, int]:
    """Read a value from `position`; return its prepared form and the index of the `,` or
    `+` that ends it (or the end of the text)."""
    end = len(text)
    while position < end and text[position] == " ":
        position += 1
    if position < end and text[position] == "#":
        stop = position + 1
        while stop < end and text[stop] not in ",+":
            stop += 1
        return prepare(_ber_string(text[position + 1:stop].strip())), stop
    raw = bytearray()
    while position < end and text[position] not in ",+":
        char = text[position]
        if char == "\\":
            pair = text[position + 1:position + 3]
            if _HEXPAIR.fullmatch(pair):
                raw.append(int(pair, 16))
                position += 3
                continue
            if pair[:1] in _ESCAPABLE:
                raw.extend(pair[0].encode())
                position += 2
                continue
            raise ValueError(f"a bad escape at position {position}")
        if char in _MUST_ESCAPE:
            raise ValueError(f"{char!r} must be escaped in a value (RFC 4514 §2.4)")
        raw.extend(char.encode("utf-8"))
        position += 1
    try:
        value = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("escaped bytes are not UTF-8") from None
    if not prepare(value):
        raise ValueError("an empty attribute value")
    return prepare(value), position


def _ber_string(hex_text: str) -> str:
    """RFC 4514 §2.4 `#hexstring`: the BER encoding of the value; string types only."""
    try:
        data = bytes.fromhex(hex_text)
    except ValueError:
        raise ValueError("a #hexstring that is not hex") from None
    if len(data) < 2 or data[0] not in _BER_STRINGS:
        raise ValueError("a #hexstring that is not a BER-encoded string")
    length, offset = data[1], 2
    if length & 0x80:
        count = length & 0x7F
        if count not in (1, 2) or len(data) < 2 + count:
            raise ValueError("a #hexstring with a bad length")
        length, offset = int.from_bytes(data[2:2 + count], "big"), 2 + count
    if len(data) != offset + length:
        raise ValueError("a #hexstring with a bad length")
    try:
        return data[offset:].decode(_BER_STRINGS[data[0]])
    except UnicodeDecodeError:
        raise ValueError("a #hexstring whose text does not decode") from None


# ---------------------------------------------------------------------------------------
# The model.


@dataclass(frozen=True, slots=True)
class Client:
    client_id: str
    token_endpoint_auth_method: str
    grant_types: tuple[str, ...] = DEFAULT_GRANT_TYPES
    dpop_bound_access_tokens: bool = False
    dpop_nonce_required: bool | None = None  # None: follow dpop.nonce_required
    tls_client_certificate_bound_access_tokens: bool = False
    access_token_duration: int | None = None  # seconds
    refresh_token_duration: int | None = None
    properties: str | None = None  # compact JSON, ASCII: ready for X-Token-Properties
    jwt_at_claims: str | None = None  # compact JSON, ASCII: ready for X-Token-JWT-AT-Claims
    token_endpoint_auth_signing_alg: str | None = None
    client_secret_file: str | None = None
    client_secret: str | None = field(default=None, repr=False)  # the file's content
    client_secret_hash: str | None = field(default=None, repr=False)
    jwks: tuple[JwkEntry, ...] = ()  # inline `jwks` or `jwks_file`
    jwks_uri: str | None = None
    tls_client_auth_subject: SubjectMatch | None = None
    tls_client_auth_ca_file: str | None = None
    tls_client_auth_ca: tuple[x509.Certificate, ...] = field(default=(), repr=False)
    tls_trust_store: verification.Store | None = field(default=None, repr=False,
                                                       compare=False)
    attestation_additional_signal: bool = False

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"  # noqa: S105 - a method name

    def allows_grant(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


class Registry:
    """The registered clients by id. Immutable once built; a reload builds a new one."""

    __slots__ = ("_clients", "source")

    def __init__(self, clients: Mapping[str, Client] | None = None, source: str = "") -> None:
        self._clients = dict(clients or {})
        self.source = source

    def get(self, client_id: str) -> Client | None:
        return self._clients.get(client_id)

    def __contains__(self, client_id: object) -> bool:
        return client_id in self._clients

    def __iter__(self) -> Iterator[Client]:
        return iter(self._clients.values())

    def __len__(self) -> int:
        return len(self._clients)

    def __repr__(self) -> str:
        return f"Registry(source={self.source!r}, clients={len(self)})"

    @property
    def jwks_uris(self) -> frozenset[str]:
        return frozenset(c.jwks_uri for c in self if c.jwks_uri)


# ---------------------------------------------------------------------------------------
# Loading.


def load_registry(path: str | Path) -> Registry:
    """Read and check the registry file and every file it names; raise ConfigError."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from exc
    return registry_from_mapping(raw, path.parent, source=str(path))


def registry_from_mapping(raw: Mapping[str, Any], base_dir: Path,
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
        client = _client(TableReader(table, prefix, problems, base_dir))
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


def read_table_array(raw: object, base_dir: Path, prefix: str, *,
                     build: Callable[[TableReader], T | None],
                     identity: Callable[[T], str], identity_key: str) -> tuple[T, ...]:
    """A TOML array of tables (`[[prefix]]`), each built by `build`; raise ConfigError naming
    every problem as `<prefix>[<i>].<key>`, a repeated identity (`identity_key`) included."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError([f"{prefix}: expected an array of tables"])
    problems: list[str] = []
    built: list[T] = []
    seen: set[str] = set()
    for index, table in enumerate(raw):
        if not isinstance(table, Mapping):
            problems.append(f"{prefix}[{index}]: expected a table")
            continue
        item = build(TableReader(table, f"{prefix}[{index}]", problems, base_dir))
        if item is None:
            continue
        if identity(item) in seen:
            problems.append(
                f"{prefix}[{index}].{identity_key}: {identity(item)!r} is listed twice")
            continue
        seen.add(identity(item))
        built.append(item)
    if problems:
        raise ConfigError(problems)
    return tuple(built)


class TableReader:
    """Reads typed values out of one TOML table, recording each problem as `<prefix>.<key>`.
    Every getter returns None (and records why) when the value is absent or unusable."""

    def __init__(self, table: Mapping[str, Any], prefix: str, problems: list[str],
                 base_dir: Path) -> None:
        self.table, self.prefix, self.problems, self.base_dir = table, prefix, problems, base_dir
        self._failed = False

    @property
    def ok(self) -> bool:
        return not self._failed

    def problem(self, key: str, message: str) -> None:
        self._failed = True
        self.problems.append(f"{self.prefix}.{key}: {message}")

    def unknown_keys(self, known: frozenset[str]) -> None:
        for name in self.table:
            if name not in known:
                self.problem(name, "unknown key")

    def has(self, key: str) -> bool:
        return key in self.table

    def string(self, key: str, *, required: bool = False) -> str | None:
        value = self.table.get(key)
        if value is None:
            if required:
                self.problem(key, "required")
            return None
        if not isinstance(value, str) or not value:
            self.problem(key, f"expected a non-empty string, got {_type_name(value)}")
            return None
        return value

    def boolean(self, key: str) -> bool | None:
        value = self.table.get(key)
        if value is not None and not isinstance(value, bool):
            self.problem(key, f"expected true or false, got {_type_name(value)}")
            return None
        return value

    def positive_int(self, key: str) -> int | None:
        value = self.table.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            self.problem(key, f"expected a positive integer (seconds), got {value!r}")
            return None
        return value

    def strings(self, key: str) -> tuple[str, ...] | None:
        value = self.table.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(key, f"expected a list of strings, got {_type_name(value)}")
            return None
        return tuple(value)

    def json_object(self, key: str) -> str | None:
        """A table, as compact ASCII JSON (safe as a header value)."""
        value = self.table.get(key)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            self.problem(key, f"expected a table, got {_type_name(value)}")
            return None
        try:
            return json.dumps(value, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
        except (TypeError, ValueError):
            self.problem(key, "holds a value JSON cannot express (a date or time?)")
            return None

    def path(self, key: str) -> Path | None:
        value = self.string(key)
        if value is None:
            return None
        path = Path(value)
        return path if path.is_absolute() else self.base_dir / path

    def read_bytes(self, key: str, max_bytes: int = 1 << 20) -> bytes | None:
        path = self.path(key)
        if path is None:
            return None
        try:
            with path.open("rb") as handle:
                data = handle.read(max_bytes + 1)
        except OSError as exc:
            self.problem(key, f"cannot read {str(path)!r}: {exc.strerror}")
            return None
        if len(data) > max_bytes:
            self.problem(key, f"{str(path)!r} is larger than {max_bytes} bytes")
            return None
        return data

    def http_url(self, key: str) -> str | None:
        value = self.string(key)
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
            self.problem(key, f"expected an absolute http(s) URL without fragment, got {value!r}")
            return None
        return value

    def jwks(self, *, need_x5c: bool = False) -> tuple[JwkEntry, ...]:
        """The keys of inline `jwks` (a table or JSON text) or of `jwks_file`."""
        document: object = None
        key = "jwks" if self.has("jwks") else "jwks_file"
        if key == "jwks":
            document = self.table["jwks"]
            if not isinstance(document, Mapping | str):
                self.problem(key, f"expected a table or JSON text, got {_type_name(document)}")
                return ()
        else:
            data = self.read_bytes(key)
            if data is None:
                return ()
            document = data.decode("utf-8", "replace")
        try:
            keys = parse_jwks(document, strict=True)
        except JwksError as exc:
            self.problem(key, str(exc))
            return ()
        if need_x5c and not any(k.x5c for k in keys):
            self.problem(key, "self_signed_tls_client_auth needs keys with an x5c certificate")
            return ()
        return keys


def _type_name(value: object) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "a boolean",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)


def _client(reader: TableReader) -> Client | None:
    reader.unknown_keys(_KNOWN_KEYS)
    client_id = reader.string("client_id", required=True)
    if client_id is not None and not _VSCHAR.fullmatch(client_id):
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
        material.update(_secret_file(reader))
        secret = material.get("client_secret")
        if method == "client_secret_jwt" and secret is not None \
                and not hmac_key_long_enough("HS256", secret.encode("utf-8")):
            reader.problem("client_secret_file", "client_secret_jwt needs a secret of at "
                           "least 32 bytes (RFC 7518 §3.2, for HS256)")
    if reader.has("client_secret_hash"):
        material["client_secret_hash"] = _secret_hash(reader)
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


def _secret_file(reader: TableReader) -> dict[str, Any]:
    data = reader.read_bytes("client_secret_file", MAX_SECRET_FILE_BYTES)
    if data is None:
        return {}
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        reader.problem("client_secret_file", "the secret is not UTF-8 text")
        return {}
    # A file written by `echo` or an editor ends with a newline that is not part of the
    # secret (the same trim kubectl users expect). Only one line terminator is dropped.
    secret = text.removesuffix("\n").removesuffix("\r")
    if not valid_secret_text(secret):
        reader.problem("client_secret_file", "the secret is empty or has control characters")
        return {}
    return {"client_secret_file": str(reader.path("client_secret_file")), "client_secret": secret}


def valid_secret_text(secret: str) -> bool:
    """What a client secret may be: non-empty text without control characters.

    RFC 6749 Appendix A.2 says `client-secret = *VSCHAR` (%x20-7E). That grammar describes the
    secret as it travels - form-urlencoded (Appendix B) inside Basic, or in the form body - and
    there the sidecar enforces it (credentials.py). The *decoded* secret is compared as UTF-8
    text: real clients send non-ASCII secrets in that encoding, and authorization servers
    disagree on exactly this decoding - node-oidc-provider refuses
    non-VSCHAR after decoding, Keycloak, Spring and Hydra decode and accept. We accept any text
    a client could have encoded per Appendix B, minus control characters (the part of VSCHAR's
    intent that still applies), so a registered secret with `+`, `%`, `:` or `é` works.
    """
    return bool(secret) and not any(unicodedata.category(c) in ("Cc", "Cs") for c in secret)


def _secret_hash(reader: TableReader) -> str | None:
    value = reader.string("client_secret_hash")
    if value is None:
        return None
    try:
        parameters = argon2.extract_parameters(value)
    except (argon2.exceptions.InvalidHashError, ValueError):
        reader.problem("client_secret_hash", "not an argon2id PHC string "
                       "($argon2id$v=19$m=...,t=...,p=...$salt$hash)")
        return None
    if parameters.type is not argon2.Type.ID:
        reader.problem("client_secret_hash", "only argon2id is accepted (RFC 9106 §4)")
        return None
    memory, time_cost = parameters.memory_cost, parameters.time_cost
    if memory < ARGON2_MIN_MEMORY_KIB or memory * time_cost < ARGON2_MIN_MEMORY_TIME:
        reader.problem("client_secret_hash", f"argon2id parameters m={memory},t={time_cost} "
                       "are weaker than OWASP's minimum (e.g. m=19456,t=2)")
        return None
    if memory > ARGON2_MAX_MEMORY_KIB or time_cost > ARGON2_MAX_TIME_COST \
            or parameters.parallelism > ARGON2_MAX_PARALLELISM:
        reader.problem("client_secret_hash", f"argon2id parameters exceed the sidecar's limits "
                       f"(m <= {ARGON2_MAX_MEMORY_KIB}, t <= {ARGON2_MAX_TIME_COST}, "
                       f"p <= {ARGON2_MAX_PARALLELISM})")
        return None
    return value


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
    data = reader.read_bytes("tls_client_auth_ca_file")
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
