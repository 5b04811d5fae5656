"""Create DOT's tables and the test's applications, in one Django start-up.

    python -m tests.support.dot_server.seed < applications.json

stdin is a JSON list of {"name", "client_id", "client_secret", "grant_type"}; DOT stores the
secret hashed (HASH_CLIENT_SECRET), so the caller keeps the clear one.
"""

from __future__ import annotations

import json
import os
import sys

import django  # type: ignore[import-untyped]


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.support.dot_server.settings")
    django.setup()  # Django's models can be imported only after this
    from django.core.management import call_command  # type: ignore[import-untyped]  # noqa: PLC0415
    from oauth2_provider.models import get_application_model  # type: ignore[import-untyped]  # noqa: PLC0415

    call_command("migrate", verbosity=0, interactive=False)
    application = get_application_model()
    for spec in json.load(sys.stdin):
        application.objects.create(
            name=spec["name"], client_id=spec["client_id"], client_secret=spec["client_secret"],
            client_type=application.CLIENT_CONFIDENTIAL,
            authorization_grant_type=spec["grant_type"])


if __name__ == "__main__":
    main()
