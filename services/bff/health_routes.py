"""``GET /healthz``: the probe of Kubernetes and load balancers (no sign-in, no gateway call).

200 ``{"status": "ok"}`` while the process serves HTTP. It does not ask the gateway: with the gateway
down the BFF still answers (503 problem details, the page says "reconnecting"), which is better than
a proxy error, so its pods stay in the Service. Not counted in ``http.server.request.duration``
(probes are not traffic; see http_telemetry).
"""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()


@router.get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
