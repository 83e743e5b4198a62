"""Who is signed in: the session's user and the ad accounts they may read."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.account_ids import InvalidAccountId, normalise_account_id


@dataclass(frozen=True, slots=True)
class User:
    subject: str                   # e.g. an e-mail address; "local" for adfatigue up's link
    accounts: tuple[str, ...]      # numeric ids (no act_), or ("*",)
    roles: tuple[str, ...] = ()    # "operator" may force a refresh

    def may_read(self, account_id: str) -> bool:
        return "*" in self.accounts or account_id in self.accounts

    @property
    def is_operator(self) -> bool:
        return "operator" in self.roles

    def as_session(self) -> dict:
        return {"sub": self.subject, "accounts": list(self.accounts), "roles": list(self.roles)}

    @classmethod
    def from_session(cls, data: dict) -> "User":
        return cls(str(data["sub"]), tuple(str(a) for a in data["accounts"]), tuple(str(r) for r in data["roles"]))


def account_list(values) -> tuple[str, ...]:
    """Normalised account ids ("*" kept); raises ValueError naming a bad one."""
    out = []
    for value in values:
        if value == "*":
            out.append("*")
            continue
        try:
            out.append(normalise_account_id(str(value)))
        except InvalidAccountId as exc:
            raise ValueError(str(exc)) from None
    return tuple(out)
