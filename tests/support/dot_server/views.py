"""A resource protected by DOT itself: it accepts `Authorization: Bearer` tokens only."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse  # type: ignore[import-untyped]
from oauth2_provider.views import ProtectedResourceView  # type: ignore[import-untyped]


class Hello(ProtectedResourceView):  # type: ignore[misc]
    """Answers whose token DOT accepted, so that a test sees what reached the API."""

    def verify_request(self, request: HttpRequest) -> tuple[bool, Any]:
        valid, self.oauth_request = super().verify_request(request)
        return valid, self.oauth_request

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
        token = self.oauth_request.access_token  # DOT's AccessToken row
        return JsonResponse({"hello": "world", "client_id": token.application.client_id,
                             "scope": token.scope})
