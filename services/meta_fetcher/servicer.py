"""``MetaFetcher`` gRPC servicer: validate, fetch from Meta, convert, answer.

Status codes (meta_fetcher.proto): INVALID_ARGUMENT for a bad account id,
dates, unsupported fields or a range older than 37 months (checked before any
call); NOT_FOUND when Meta does not know the account (100/33);
FAILED_PRECONDITION for an invalid/expired token (190; a vault token is then
marked invalid and later calls fail here before any call until a new token
is stored, ``services.meta_fetcher.credentials``) or a retired API version
(2635); PERMISSION_DENIED (10, 200-299); RESOURCE_EXHAUSTED when
Meta throttles or our rate budget / usage pacing refuses the call (message
says when to retry); UNAVAILABLE when Meta fails after retries; DATA_LOSS when
a page does not parse (nothing is returned). RESOURCE_EXHAUSTED also carries
trailing metadata ``retry-after-s`` (whole seconds). Classification:
``services.meta_fetcher.graph_errors``.

``with_reach_cum`` also fills ``reach_cum`` (``services.meta_fetcher.account_fetch``).

Each account is answered by the provider that serves it (``PROVIDERS``,
``services.meta_fetcher.provider_registry``): accounts configured in
``PROVIDER_CSV`` from their Ads Manager export (``services.providers.csv_replay``)
with no call to Meta (``upstream_calls`` 0, ``reach_cum`` never set), the others
from Meta; the same checks apply and only the requested fields are filled.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timezone

import grpc

from services.common.account_ids import normalise_account_id
from services.common.grpc_server import MAX_MESSAGE_BYTES
from services.common.pb.adfatigue.v1 import meta_fetcher_pb2, meta_fetcher_pb2_grpc
from services.meta_fetcher.account_fetch import AccountFetcher
from services.meta_fetcher.graph_client import CallCounter, GraphClient
from services.meta_fetcher.graph_errors import redact
from services.meta_fetcher.meta_provider import MetaProvider
from services.meta_fetcher.provider_registry import ProviderRouter
from services.common.row_proto import row_to_proto
from services.meta_fetcher.request_validation import RequestError, validate_fetch_request
from services.providers.base import ProviderError

log = logging.getLogger(__name__)

SERVICE_NAME = meta_fetcher_pb2.DESCRIPTOR.services_by_name["MetaFetcher"].full_name
#: Leave room for the response envelope under the 16 MiB ceiling (DESIGN.md R12).
MAX_RESPONSE_BYTES = MAX_MESSAGE_BYTES - 64 * 1024
#: Trailing metadata on RESOURCE_EXHAUSTED: whole seconds until a call may succeed (also in the message).
RETRY_AFTER_KEY = "retry-after-s"


class MetaFetcherServicer(meta_fetcher_pb2_grpc.MetaFetcherServicer):
    """Serves ``FetchInsights`` from the provider that serves each account (``provider_registry``).

    ``client``: the process's Graph client (its secrets are kept out of messages, its account cache
    checks ranges early); ``providers``: the ``ProviderRouter`` of the ``PROVIDERS`` setting (default:
    Meta through ``client`` for every account).
    """

    def __init__(self, client: GraphClient, providers: ProviderRouter | None = None) -> None:
        self.client = client
        self.providers = providers or ProviderRouter([MetaProvider(AccountFetcher(client))])

    async def FetchInsights(self, request: meta_fetcher_pb2.FetchInsightsRequest,
                            context: grpc.aio.ServicerContext) -> meta_fetcher_pb2.FetchInsightsResponse:
        """Daily ad rows for ``request.account_id`` over ``since..until`` (see module docstring for errors)."""
        secrets = self.client.settings.secrets
        try:
            cached = None
            try:
                cached = self.client.cached_account(normalise_account_id(request.account_id))
            except ValueError:
                pass
            req = validate_fetch_request(request.account_id, request.since, request.until, list(request.fields),
                                         timezone_name=cached.timezone_name if cached else None,
                                         attribution=list(request.action_attribution_windows))
        except RequestError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, redact(str(exc), secrets))
        account = f"act_{req.account_id}"
        counter = CallCounter()
        try:
            provider = self.providers.for_account(req.account_id)
            info = await provider.account_info(req.account_id, counter)
            if cached is None:  # now that the time zone is known, check retention precisely
                validate_fetch_request(request.account_id, request.since, request.until, list(request.fields),
                                       timezone_name=info.timezone_name)
            rows = await provider.fetch_insights(req.account_id, req.since, req.until, fields=req.fields,
                                                 attribution=req.attribution, with_reach_cum=request.with_reach_cum,
                                                 counter=counter)
        except RequestError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, redact(str(exc), secrets))
        except ProviderError as exc:
            message = redact(exc.message, secrets)
            log.warning("FetchInsights %s %s..%s -> %s after %d call(s): %s", account, req.since, req.until,
                        exc.code.name, counter.calls, message)
            if exc.code == grpc.StatusCode.RESOURCE_EXHAUSTED and exc.retry_after_s is not None:
                context.set_trailing_metadata(((RETRY_AFTER_KEY, str(max(1, math.ceil(exc.retry_after_s)))),))
            await context.abort(exc.code, message)
        fetched_at = max((r.fetched_at for r in rows if r.fetched_at), default=datetime.now(timezone.utc))
        # only what was asked is sent, whatever a provider filled (an export has every field)
        mask = None if not request.fields else {*req.fields, "adset_id", "campaign_id",
                                                *(("reach_cum",) if request.with_reach_cum else ())}
        response = meta_fetcher_pb2.FetchInsightsResponse(
            account_id=req.account_id,
            rows=[row_to_proto(r, mask) for r in rows],
            upstream_calls=counter.calls,
            account_timezone=info.timezone_name,
            account_currency=info.currency,
            account_name=info.name,
        )
        response.fetched_at.FromDatetime(fetched_at)
        size = response.ByteSize()
        if size > MAX_RESPONSE_BYTES:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"{len(rows)} rows for {account} {req.since}..{req.until} are {size / 2**20:.1f} MiB, over the "
                f"{MAX_RESPONSE_BYTES / 2**20:.0f} MiB response limit: ask for a shorter range or fewer fields")
        log.info("FetchInsights %s %s..%s: %d rows from %s, %d upstream call(s)", account, req.since, req.until,
                 len(rows), provider.name, counter.calls)
        return response
