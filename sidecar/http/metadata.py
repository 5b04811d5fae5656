"""The upstream's metadata documents (RFC 8414 §3, OpenID Connect Discovery §4) passed through
with what the sidecar enforces written in (`sidecar.core.metadata`). A document that is not
a 200 JSON object passes unchanged; `ETag` and `Content-Length` follow the new body."""

from __future__ import annotations

import hashlib
import json
import logging

from aiohttp import web

from sidecar.core.metadata import Enforced, augment, enforced_fields, metadata_document
from sidecar.errors import OAuthError
from sidecar.http.proxy import Outbound, UpstreamAnswer
from sidecar.http.render import error_response
from sidecar.http.runtime import STATE, Runtime

log = logging.getLogger("token_sidecar.metadata")


async def metadata(request: web.Request, runtime: Runtime, outbound: Outbound) -> web.Response:
    request_id = outbound.request_id
    answer = await runtime.upstream.send_token(request, outbound.target, outbound.headers, None)
    if isinstance(answer, OAuthError):
        return error_response(answer, request_id)
    metrics = request.app[STATE].metrics
    body = _augmented(answer, enforced_by(runtime))
    metrics.child(metrics.metadata_documents, "passed" if body is None else "augmented").inc()
    headers_out = answer.headers
    headers_out["X-Request-Id"] = request_id
    if body is not None and "ETag" in headers_out:
        # RFC 9110 §8.8.3: another representation, another entity tag.
        headers_out["ETag"] = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return web.Response(status=answer.status, headers=headers_out,
                        body=answer.body if body is None else body)


def _augmented(answer: UpstreamAnswer, enforced: Enforced) -> bytes | None:
    media_type = answer.headers.get("Content-Type", "").partition(";")[0].strip().lower()
    if answer.status != 200 or media_type != "application/json" \
            or answer.headers.get("Content-Encoding", "identity").lower() != "identity":
        return None
    document = metadata_document(answer.body)
    if document is None:
        return None
    out, changed = augment(document, enforced)
    if not changed:
        return None
    return json.dumps(out, separators=(",", ":")).encode()


def enforced_by(runtime: Runtime) -> Enforced:
    return enforced_fields(runtime.settings, runtime.env.policy)
