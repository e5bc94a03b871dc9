"""POST /v1/explain: why /v1/verify would refuse a URL now (``gateway.explain``), for administrators.

The answer names keys, principals, who revoked what and why: only a principal
with ``admin`` may ask. Nothing is recorded and nothing is remembered: the
verdict is decided afresh, exactly as /v1/verify would decide it now.
"""

from __future__ import annotations

from aiohttp import web

from gateway.errors import Forbidden
from gateway.explain.inquiry import Inquiry
from gateway.model import Permission
from gateway.web import parsing, schemas
from gateway.web.appkeys import SERVICES
from gateway.web.middleware import json_response
from gateway.web.sign import authenticated_principal


async def explain(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    principal = await authenticated_principal(request, services)
    if Permission.ADMIN not in principal.permissions:
        raise Forbidden("explaining a URL needs the admin permission", reason="not-permitted")
    body = await parsing.body(request, schemas.ExplainRequest)
    found = await Inquiry(services).explain(
        body.url, profile=body.profile, client_ip=body.client_ip, now=services.clock()
    )
    answer = schemas.Explained(
        verdict=found.verdict, reason=found.reason, profile=found.profile, summary=found.summary,
        details=found.details, facts=found.facts,
    )  # fmt: skip
    return json_response(answer)
