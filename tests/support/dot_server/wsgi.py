"""The WSGI application gunicorn serves (`tests.support.dot_server.wsgi:application`)."""

import os

from django.core.wsgi import get_wsgi_application  # type: ignore[import-untyped]

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.support.dot_server.settings")
application = get_wsgi_application()
