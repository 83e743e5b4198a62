"""Providers are meta_fetcher's one plug point (DESIGN.md R14): a registry by name, chosen by settings.

``PROVIDERS`` (a setting, default ``ads_manager_csv,meta``) lists registry names
in the order they are asked: each account goes to the first provider whose
``serves(account_id)`` is true (the CSV provider serves the accounts of
``PROVIDER_CSV``; Meta serves every account). Adding a source is one module
implementing ``services.providers.base.InsightsProvider`` with a
``from_resources(resources)`` classmethod, and one line here.

Imports flow one way: meta_fetcher imports ``services.providers`` (the
protocol, the CSV provider); nothing under ``services.providers`` imports a service.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import grpc

from services.providers.base import InsightsProvider, ProviderError

#: name -> "module:Class" (imported when a setting names it).
REGISTRY: dict[str, str] = {
    "ads_manager_csv": "services.providers.csv_replay:CsvReplayProvider",
    "meta": "services.meta_fetcher.meta_provider:MetaProvider",
}


@dataclass(frozen=True)
class ProviderResources:
    """What the process opened that providers may share: settings, the Graph client, account credentials."""

    settings: Any
    client: Any = None
    credentials: Any = None


def load(name: str) -> type:
    """The provider class registered as ``name``; ValueError naming the registered ones otherwise."""
    target = REGISTRY.get(name)
    if target is None:
        raise ValueError(f"PROVIDERS names {name!r}, not a registered provider: use {', '.join(sorted(REGISTRY))}")
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


class ProviderRouter:
    """The providers of ``PROVIDERS``, asked in order which one serves an account."""

    def __init__(self, providers: list[InsightsProvider]) -> None:
        if not providers:
            raise ValueError("PROVIDERS names no provider")
        self.providers = providers

    @classmethod
    def open(cls, resources: ProviderResources) -> "ProviderRouter":
        names = [n.strip() for n in resources.settings.providers.split(",") if n.strip()]
        return cls([load(name).from_resources(resources) for name in names])

    def for_account(self, account_id: str) -> InsightsProvider:
        """The first provider serving ``account_id``; ProviderError(NOT_FOUND) when none does."""
        for provider in self.providers:
            if provider.serves(account_id):
                return provider
        raise ProviderError(grpc.StatusCode.NOT_FOUND,
                            f"no provider serves {account_id}: PROVIDERS is "
                            f"{', '.join(p.name for p in self.providers)}")

    async def aclose(self) -> None:
        for provider in self.providers:
            await provider.aclose()
