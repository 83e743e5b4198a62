"""Insights providers (DESIGN.md R14): where daily ad rows come from, behind one small protocol.

``base`` (the ``InsightsProvider`` protocol, ``SyncPoint``, ``ProviderError``),
``meta`` (the Meta Graph API through ``services.meta_fetcher``), ``csv_replay``
(Ads Manager CSV exports, an account analysed offline). A new ad platform
(Google Ads, TikTok Ads) is one more module implementing the protocol.
"""

from services.providers.base import InsightsProvider, ProviderAccount, ProviderError, SyncPoint

__all__ = ["InsightsProvider", "ProviderAccount", "ProviderError", "SyncPoint"]
