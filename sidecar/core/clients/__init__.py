"""The client registry (`clients.registry_file`): what each client registered, read and checked.

`loading.load_registry` reads every file the registry names (client secrets, CA bundles, JWKS
files) *now*, so a reload sees a rotated Kubernetes Secret; it collects every problem, each
named `clients[<i>].<key>: ...`, and raises one `ConfigError` with all of them. The caller
keeps the registry in force when a new one does not load. Relative file paths are relative to
the registry file's directory (the registry and the files it names are usually mounted
together).

- `model`: `Client` and `Registry`;
- `loading`: the `[[clients]]` tables, what each authentication method needs;
- `tables`: the checked TOML table reader that the attesters and trusted issuers reuse;
- `secret_policy`: secret files and argon2id parameter bounds;
- `subjects`, `dn`: tls_client_auth subject matching (RFC 8705 §2.1.2), RFC 4514 names.
"""
