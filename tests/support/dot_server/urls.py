"""DOT under /o/ (token, introspect, revoke_token, OIDC discovery), RFC 8414 metadata at the
root as DOT's documentation asks for a prefixed mount, and one protected API."""

from django.urls import include, path  # type: ignore[import-untyped]
from oauth2_provider import urls as dot_urls  # type: ignore[import-untyped]

from tests.support.dot_server.views import Hello

urlpatterns = [
    path("o/", include(dot_urls)),
    path("", include((dot_urls.metadata_urlpatterns, "oauth2_metadata"))),
    path("api/hello", Hello.as_view()),
]
