"""Counters of the gateway's tiers (issue 4 item 9); exported by GetStats."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(slots=True)
class GatewayCounters:
    l1_hits: int = 0
    l1_misses: int = 0
    l2_hits: int = 0
    l2_misses: int = 0
    upstream_calls: int = 0
    upstream_calls_avoided: int = 0
    stale_answers: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
