"""A minimal Django project serving django-oauth-toolkit (DOT): a real authorization server,
written by others, for the tests (tests/support/dot.py starts it under gunicorn).

Everything it writes (the sqlite database) and reads (the OIDC signing key) lives in the
directory named by DOT_SERVER_DIR, which the fixture creates; nothing here is a deployment.
"""
