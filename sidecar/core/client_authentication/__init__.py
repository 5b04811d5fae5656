"""Client authentication against the registry (RFC 6749 §2.3, RFC 7523 §3, RFC 8705 §2).

`credentials.py` extracted *what* the client presented (`ClientCredentials`); this module
decides whether it is right for the registered client, with the method the client registered
and no other. Every refusal is `invalid_client` (401; RFC 6749 §5.2), with
`WWW-Authenticate: Basic realm=..., error="invalid_client"` when the client used the
Authorization header, a stable `client.<reason>` result code, and nothing secret in the
description or the detail.

The methods:
- `client_secret_basic` / `client_secret_post`: the `SecretVerifier` port (constant time, or
  argon2id with a cache of verified secrets);
- `client_secret_jwt` / `private_key_jwt`: OpenID Connect Core §9 and RFC 7523 §3 - `iss` =
  `sub` = client id, `aud` the issuer as its sole value (draft-ietf-oauth-rfc7523bis) or, for
  older clients, the issuer or the token endpoint (`assertion_audiences`), `exp` required, a
  bounded lifetime, `nbf`/`iat` not in the future (with leeway), `jti` required and single-use
  until `exp` (returned as a `ReplayCheck`: the pipeline burns it last, after every other
  check of the request, in one atomic store call);
- `tls_client_auth`: the chain validated against the client's own CA bundle (RFC 8705 §7.4:
  one CA per client, not one shared pool), then the one registered subject matched on the
  leaf only (`clients.subjects.SubjectMatch`);
- `self_signed_tls_client_auth`: no chain validation; the leaf must be one of the registered
  certificates (JWKS `x5c`, RFC 8705 §2.2);

The package: `policy` (the policy, the result, the refusals), `methods` (`authenticate`, the
secret methods), `assertions`, `certificates`, `client_policy` (what applies once the client
is known).
"""
