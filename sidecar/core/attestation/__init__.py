"""Attestation-based client authentication (draft-ietf-oauth-attestation-based-client-auth-10).

A client instance sends an attestation signed by a Client Attester (`OAuth-Client-Attestation`)
and proves possession of the key the attestation names in `cnf.jwk`, either with a dedicated
PoP JWT (`OAuth-Client-Attestation-PoP`, method `attest_jwt_client_auth`) or with its DPoP proof
("combined mode", `attest_jwt_client_auth_dpop`, since -09). This module is pure: header values,
the policy, the time and a `JwksSource` in; an `AttestedClient` or an `OAuthError` out. Single-use
values are returned as `ReplayCheck`s for the pipeline's last step, never burned here.

The rules are those of -10; where -11 changed one (combined mode uses DPoP nonces only), both
readings are accepted. Section numbers are those of the WG editor's copy after -11 (the
numbering third-party code cites for -11; not checked against the -10 text): §4 attestation,
§5.1 PoP, §5.2 combined mode, §6 challenges, §7.1-§7.4 verification and errors, §7.5-§7.6
client authentication and additional signal, §10.3 refresh binding, §10.8 key resolution.

Finding the attester. Since -08 the attestation has no `iss` (that draft dropped it); how
the server trusts attesters and finds their keys is out of scope of the draft (§10.8,
which suggests "the kid header parameter combined with ... pre-shared information"). So:
1. the candidates are the configured attesters whose `clients` list holds the attestation's
   `sub` - none is `invalid_client` (RFC 6749 §5.2 "unknown client");
2. when the attestation still carries `iss` (drafts up to -07, and attesters that keep it as
   an "other claim", §4 rule 1), only the attester with that `issuer` remains;
3. the signature is tried with each remaining attester's keys (inline, file, or `jwks_uri`
   through the bounded cache), narrowed by `kid` when the header has one; the first attester
   whose key verifies is the one reported upstream.
Attester keys are asymmetric only (MAC-protected attestations, allowed since -07, need a
shared secret per attester and are not supported); `x5c`/`jku` resolution is not supported.

Errors (§7.4): the draft's codes are answered with 400 ("Authorization Servers SHOULD return
these error codes with an HTTP 400"): `invalid_client_attestation` when the attestation or its
proof could not be verified, `use_fresh_attestation` when the attestation has expired or is
older than `max_age_seconds`, `use_attestation_challenge` (with a fresh
`OAuth-Client-Attestation-Challenge`) when a challenge is missing or not ours, and in combined
mode `use_dpop_nonce` with a fresh `DPoP-Nonce` (§7.4 first bullet, -11). Where the draft
defers to RFC 6749 (§7.4 last paragraph), RFC 6749 §5.2 applies: `invalid_client` (401) for an
unknown client, a `client_id` that is not the attested one (§7.1 rule 7, §7.5), or a client
registered with another method; `invalid_request` for attestation next to another method
(RFC 6749 §2.3) unless the client registered attestation as an additional signal (§7.6).
The -00...-02 `client_assertion` form predates these codes: its refusals are `invalid_client`
(RFC 7521 §4.2.1). Result codes are `attestation.<reason>`; descriptions never quote a token.

The package, one module per concern: `config` (the section, the attesters), `results` (the
verified client, the errors), `verification` (attestation and PoP JWTs), `combined` (DPoP as
the PoP), `challenges` (§6), `authentication` (the attestation among the client's
credentials), `refresh_binding` (§10.3), `legacy` (the -00...-02 form).
"""
