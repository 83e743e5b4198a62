"""Insights providers (DESIGN.md R14): where daily ad rows come from, behind one small protocol.

``base`` (the ``InsightsProvider`` protocol, ``ProviderError``, and how R14's
differential updates are realised),
``csv_replay`` (Ads Manager CSV exports, an account analysed offline). The Meta
Graph API provider lives with its client in ``services.meta_fetcher.meta_provider``;
meta_fetcher picks a provider per account from its registry
(``services.meta_fetcher.provider_registry``, the ``PROVIDERS`` setting). A new ad
platform (Google Ads, TikTok Ads) is one more module implementing the protocol and
one registry line. Nothing here imports a service.
"""

from services.providers.base import InsightsProvider, ProviderAccount, ProviderError

__all__ = ["InsightsProvider", "ProviderAccount", "ProviderError"]
