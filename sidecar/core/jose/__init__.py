"""JOSE: the one layer that reads and verifies JWTs (RFC 7515, 7517, 7518, 7519, 7638).

- `compact`: the compact serialisation, base64url and strict JSON segments;
- `keys`: public JWKs and RFC 7638 thumbprints;
- `key_sets`: JWK Sets (RFC 7517 §5), inline or fetched through a bounded cache;
- `algorithms`: the algorithm table, signature verification, the cached fast path;
- `claims`: claim rules (times with leeway, audience, jti), returning reason values.

Nothing here knows an OAuth error: each RFC module (dpop, client_authentication, jwt_bearer,
attestation, grants, credentials) maps the reasons to its own error codes.
"""
