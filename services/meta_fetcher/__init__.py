"""meta_fetcher: the only service that talks to the Meta Graph API (L3).

``graph_client`` (HTTP, paging, retries), ``graph_parsing`` (wire -> InsightRow),
``graph_errors`` (classification -> gRPC status), ``services.common.row_proto``,
``servicer`` (``MetaFetcher.FetchInsights``), ``server`` (``python -m services.meta_fetcher``).
"""
