"""DPoP proof validation at the token endpoint (RFC 9449 §4.3), errors per §5 and §8.

`validate_proof` is pure: header values, the request method, a precomputed `DpopPolicy`, the
time and the nonce issuer in; a `DpopProof` or an `OAuthError` out. It never raises and never
touches the store: the caller burns the replay key (`DpopProof.replay_key`, for
`DpopProof.replay_ttl_seconds`) once every other check of the request has passed, so that a
request refused for another reason does not use up its proof's `jti`.

Order of the checks, and why the nonce comes last
-------------------------------------------------
1. one `DPoP` header (§4.3 step 1), a compact JWS (step 2);
2. the JOSE header: `typ` (step 4), no `crit` we do not understand (RFC 7515 §4.1.11), `alg`
   (step 5), `jwk` public and consistent with `alg` (step 7);
3. the signature (step 6);
4. the claims: present (step 3), `jti` bounded (§11.1), `htm` (step 8), `htu` (step 9), `iat`
   (step 11), `exp`/`nbf` when present (RFC 7519 §4.1.4, §4.1.5), `ath` by policy;
5. the nonce (step 10).

`use_dpop_nonce` is the one error a client recovers from without changing anything but the
nonce: it is an instruction to retry (§8), and it carries a fresh `DPoP-Nonce`. It is
therefore only given to a proof that is valid in every other respect, so that the retry
succeeds. A proof with a bad signature, a wrong `htu` or a stale `iat` gets
`invalid_dpop_proof` first (it would fail again after the retry, and an unauthenticated
proof gets no hint); an expired or unknown nonce on an otherwise valid proof gets
`use_dpop_nonce`, not `invalid_dpop_proof` (draft-dpop#91). The replay check, being
stateful, is the caller's and comes after all of these.

The `iat` window is always enforced, nonce or not (§4.3 step 11 allows a nonce to stand in for
`iat`; we do not, so that one rule bounds the life of every proof and the replay TTL).

Speed: the JOSE header of a client's proofs is the same from one proof to the next (`typ`,
`alg`, `jwk`), so the parsed header — key object and thumbprint included — is kept by its
base64url text once a signature made with it has verified (`jose.algorithms.VerifiedHeaders`:
bounded LRU; garbage and unsigned headers never enter it). A cached ES256 proof then costs:
one regex, one base64 and one JSON decode of the payload, one ECDSA verification with
`cryptography`, no PyJWT. That cache, and the one of parsed keys, belong to the `DpopPolicy`
built at start-up: no module-level state. The `htu` rules are in `sidecar.core.htu`.

The package, one module per step of the check: `policy` (what is checked against, its
caches, the header names), `results` (the accepted proof), `errors` (the refusals),
`header` (§4.3 steps 2, 4-7: the JOSE header and the signature), `claims` (steps 3, 8, 9,
11, `ath`), `nonce` (step 10), `validate` (`validate_proof`, the order of the checks).
"""
