"""The log line and the metrics of one token-endpoint (or PAR) request: what was decided,
what the upstream answered, what was done with the answer (README "Logs" and "Metrics")."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from aiohttp import web

from sidecar.core.clients.model import Registry
from sidecar.core.upstream_answer import AnswerEdit
from sidecar.errors import OAuthError
from sidecar.http.metrics import Metrics
from sidecar.logs import log_fields
from sidecar.model import Action, Decision, Forward, Respond

log = logging.getLogger("token_sidecar.access")


@dataclass(slots=True)
class TokenRecord:
    """The log line and the metrics of one token-endpoint request."""

    request_id: str
    started: float
    metrics: Metrics
    had_dpop: bool
    registry: Registry | None  # which client ids may become metric labels

    def done(self, decision: Decision, response: web.StreamResponse, *,
             failure: OAuthError | None = None, upstream_status: int | None = None,
             edit: AnswerEdit | None = None) -> None:
        duration = time.perf_counter() - self.started
        summary = decision.summary
        if failure is None and isinstance(decision, Respond):
            failure = decision.error
        result_code = failure.result_code if failure else summary.result_code
        action = Action.for_error(failure).value if failure else decision.action.value
        self._count(decision, result_code, action, duration, response=response, edit=edit)
        log_fields(log, f"{action} {result_code}", {
            "request_id": self.request_id,
            "action": action,
            "result_code": result_code,
            "message": failure.description if failure else summary.message,
            "grant_type": summary.grant_type,
            "client_id": summary.client_id,
            "auth_method": summary.auth_method,
            "status": response.status,
            "upstream_status": upstream_status,
            "duration_seconds": round(duration, 6),
            "detail": failure.detail if failure else "",
            "notes": ",".join(edit.notes) if edit else "",
        })

    def _count(self, decision: Decision, result_code: str, action: str, duration: float, *,
               response: web.StreamResponse, edit: AnswerEdit | None) -> None:
        metrics = self.metrics
        summary = decision.summary
        metrics.observe_request(action=action, grant_type=summary.grant_type,
                                result_code=result_code, client_id=summary.client_id,
                                client_registered=self.registry is not None
                                and summary.client_id in self.registry,
                                duration=duration)
        if self.had_dpop:
            accepted = isinstance(decision, Forward) and decision.dpop_jkt is not None
            metrics.child(metrics.dpop_proofs,
                          "accepted" if accepted else
                          result_code if result_code.startswith("dpop.") else "not_checked").inc()
        if "DPoP-Nonce" in response.headers:
            metrics.nonces_issued.inc()
        if isinstance(decision, Forward) and decision.replay_check_skipped:
            metrics.replay_checks_skipped.inc()
        if edit is not None:
            if edit.token_type is not None:
                metrics.child(metrics.upstream_token_type, edit.token_type).inc()
            if edit.access_binding is not None:
                metrics.child(metrics.access_bindings, edit.access_binding).inc()
