"""The grant's own parameters of a token request: validate them and choose the action.

Shaped like node-oidc-provider's grant handlers: one rule per `grant_type` (the parameters
it requires, its own checks, its action) in `RULES`, then the checks common to every grant
(`resource`, `authorization_details`, `scope`), then the context the upstream gets (Native SSO
device-secret hash). Pure: no I/O, nothing raises; every refusal is an `OAuthError` value.

Descriptions name parameters, never their values: many of them are secrets (codes, tokens,
passwords, assertions, device secrets).

The package: `validate` (the entry point), `rules` (the table), `checks` (one grant's own
checks), `common` (every grant's), `context`, `params` (reading values, shared syntax),
`names` (the identifiers, the result).
"""
