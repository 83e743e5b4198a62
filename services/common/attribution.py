"""Attribution settings: which ``action_attribution_windows`` produced a row's conversions (issue 17).

Conversions (``actions``) depend on the attribution windows Meta counts them
in (META_GRAPH_API.md §1 ``action_attribution_windows``), so the setting is
part of a row's identity: every insights request names it, every row stores
it, and no answer or score mixes two settings.

A setting is a set of windows, written canonically as a sorted tuple
(``("1d_view", "7d_click")``) or the comma list ``"1d_view,7d_click"``.
Windows: ``1d_click``, ``7d_click``, ``28d_click``, ``1d_view``, ``1d_ev``
(engaged view), ``dda`` (data-driven). ``7d_view`` and ``28d_view`` are not
accepted: Meta stopped returning them on 2026-01-12 (META_GRAPH_API.md §6b).

With the parameter set, each ``actions`` item carries ``value`` (taken as the
conversions under the whole setting) and one key per window
(``{"action_type":"lead","value":"3","7d_click":"2","1d_view":"1"}``,
META_GRAPH_API.md §1 ``AdsActionStats``); that ``value`` sums the requested
windows is [unverified] against Meta's documentation.

``DEFAULT_ATTRIBUTION`` is Meta's current default attribution setting for an
ad set, 7-day click or 1-day view (Meta Business Help Center, "About
attribution settings"; the MeltanoLabs tap's default report asks for
``1d_view`` + ``7d_click``, META_GRAPH_API.md §8).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

WINDOWS = ("1d_click", "7d_click", "28d_click", "1d_view", "1d_ev", "dda")
RETIRED = {"7d_view": "2026-01-12", "28d_view": "2026-01-12"}
DEFAULT_ATTRIBUTION: tuple[str, ...] = ("1d_view", "7d_click")


class InvalidAttribution(ValueError):
    """An attribution setting that is empty or names an unknown or retired window."""


def canonical(windows: Iterable[str] | str) -> tuple[str, ...]:
    """The setting as a sorted tuple of distinct windows; raises InvalidAttribution."""
    items = windows.split(",") if isinstance(windows, str) else list(windows)
    names = sorted({w.strip() for w in items if w.strip()})
    if not names:
        raise InvalidAttribution("an attribution setting needs at least one window (e.g. 7d_click,1d_view)")
    for name in names:
        if name in RETIRED:
            raise InvalidAttribution(f"attribution window {name!r} is no longer returned by Meta (since "
                                     f"{RETIRED[name]}); use one of {', '.join(WINDOWS)}")
        if name not in WINDOWS:
            raise InvalidAttribution(f"attribution window {name!r} is not one of {', '.join(WINDOWS)}")
    return tuple(names)


def text(windows: Iterable[str]) -> str:
    """The canonical comma list of a setting (``""`` for an unknown one)."""
    return ",".join(windows)


@dataclass(frozen=True)
class AttributionSettings:
    """The attribution setting of each account: ``per_account`` (numeric id -> setting), else ``default``."""

    default: tuple[str, ...] = DEFAULT_ATTRIBUTION
    per_account: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def for_account(self, account_id: str) -> tuple[str, ...]:
        return self.per_account.get(account_id, self.default)

    @classmethod
    def parse(cls, default: str = "", per_account: str = "") -> "AttributionSettings":
        """From ``ATTRIBUTION_WINDOWS`` ("7d_click,1d_view"; empty: Meta's default) and
        ``ACCOUNT_ATTRIBUTION_WINDOWS`` ("act_1=1d_click;act_2=7d_click,1d_view"). Raises InvalidAttribution."""
        from services.common.account_ids import InvalidAccountId, normalise_account_id

        accounts: dict[str, tuple[str, ...]] = {}
        for item in filter(None, (p.strip() for p in per_account.split(";"))):
            account, sep, windows = item.partition("=")
            if not sep:
                raise InvalidAttribution(f"ACCOUNT_ATTRIBUTION_WINDOWS item {item!r}: use act_ID=window,window")
            try:
                accounts[normalise_account_id(account.strip())] = canonical(windows)
            except InvalidAccountId as exc:
                raise InvalidAttribution(f"ACCOUNT_ATTRIBUTION_WINDOWS item {item!r}: {exc}") from None
        return cls(canonical(default) if default.strip() else DEFAULT_ATTRIBUTION, accounts)
