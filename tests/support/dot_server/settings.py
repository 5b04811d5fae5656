"""Django settings for the DOT test server: sqlite and the OIDC key in DOT_SERVER_DIR."""

from __future__ import annotations

import os
from pathlib import Path

SERVER_DIR = Path(os.environ["DOT_SERVER_DIR"])  # set by tests/support/dot.py; no default

SECRET_KEY = "dot-test-server-not-a-secret"  # signs nothing a test relies on
DEBUG = False
# The sidecar forwards with the upstream's own Host unless told to keep the client's; a
# test that keeps it adds its public name here.
ALLOWED_HOSTS = ["127.0.0.1", "localhost", *filter(None,
                 os.environ.get("DOT_ALLOWED_HOSTS", "").split(","))]
ROOT_URLCONF = "tests.support.dot_server.urls"
WSGI_APPLICATION = "tests.support.dot_server.wsgi.application"
USE_TZ = True
TIME_ZONE = "UTC"  # the log's timestamps, like gunicorn's own
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.auth",  # DOT's models refer to the user model
    "django.contrib.contenttypes",
    "oauth2_provider",
]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": SERVER_DIR / "db.sqlite3",
        # Two gunicorn workers may write at once (token issue, revoke): wait for the lock.
        "OPTIONS": {"timeout": 20},
    }
}
# DOT hashes client secrets with Django's first password hasher (HASH_CLIENT_SECRET). The
# default, PBKDF2 at a million rounds, costs a CPU-second per client authentication on a
# test machine; Django's documentation recommends this one for tests. The secret is still
# stored hashed and checked as in production.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}

OAUTH2_PROVIDER = {
    "SCOPES": {
        "read": "Read",
        "write": "Write",
        # DOT's introspection endpoint admits a bearer token with this scope (or any
        # registered client's own credentials).
        "introspection": "Introspect tokens",
        "openid": "OpenID Connect",
    },
    # A token request without `scope` gets `read`, not every scope (DOT's default is all,
    # which would hand `introspection` to every client).
    "DEFAULT_SCOPES": ["read"],
    "PKCE_REQUIRED": False,
    "OIDC_ENABLED": True,
    "OIDC_RSA_PRIVATE_KEY": (SERVER_DIR / "oidc-rsa.pem").read_text(),
    "OIDC_ISS_ENDPOINT": os.environ.get("DOT_ISSUER", ""),  # else derived from the request
}
