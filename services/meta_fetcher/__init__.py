"""meta_fetcher: the only service that talks to the Meta Graph API (L3).

``graph_client`` (HTTP, paging, retries, time_ranges reach, token exchange),
``graph_parsing`` (wire -> InsightRow), ``graph_errors`` (classification ->
gRPC status, redaction), ``pacing`` (usage headers, rate budget),
``token_vault`` (AES-256-GCM tokens in MongoDB, key rotation),
``credentials`` (which token a call uses; 190 -> invalid), ``token_refresh``
(exchange before expiry), ``token_admin`` (CLI: put/show/rotate),
``account_fetch`` (token-aware fetch + cumulative reach),
``services.common.row_proto``, ``servicer`` (``MetaFetcher.FetchInsights``),
``server`` (``python -m services.meta_fetcher``).
"""
