"""What a registered client secret may be: a `client_secret_file` of UTF-8 text, or a
`client_secret_hash` in argon2id PHC form (RFC 9106) within the parameter bounds below."""

from __future__ import annotations

import unicodedata
from typing import Any, Final

import argon2

from sidecar.core.clients.tables import TableReader

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


def secret_file(reader: TableReader) -> dict[str, Any]:
    data = reader.file_bytes("client_secret_file", MAX_SECRET_FILE_BYTES)
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


def secret_hash(reader: TableReader) -> str | None:
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
