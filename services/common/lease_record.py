"""The durable record of the scheduler's leader lease (DESIGN.md R6), in MongoDB.

Redis holds the lease itself (who leads, for how long); MongoDB holds its
*record*: one document per lease key in the ``leases`` collection,

    {"_id": <lease key>, "token": <fencing token of the current leader>,
     "holder": <holder id>, "acquired_at": <UTC>}

Every acquisition takes the next token with one atomic ``$inc`` (upsert), so
fencing tokens strictly increase for the life of the database, even when Redis
restarts empty. The gateway accepts a scheduler's token only when it equals
the record's token: what the *current* leader holds. An older token (a deposed
leader) and a higher one (never issued) are both refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from pymongo import ReturnDocument

COLLECTION = "leases"


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    token: int
    holder: str
    acquired_at: datetime | None


class LeaseRecords:
    """``collection``: a pymongo async collection (``db["leases"]``)."""

    def __init__(self, collection):
        self.collection = collection

    @classmethod
    def of(cls, db) -> "LeaseRecords":
        return cls(db[COLLECTION])

    async def take_token(self, lease_key: str, holder: str) -> int:
        """Record ``holder`` as the leader of ``lease_key`` with the next fencing token; return it (>= 1).

        Call only after winning the lease (Redis ``SET NX``). Raises pymongo errors.
        """
        doc = await self.collection.find_one_and_update(
            {"_id": lease_key},
            {"$inc": {"token": 1}, "$set": {"holder": holder, "acquired_at": datetime.now(timezone.utc)}},
            upsert=True, return_document=ReturnDocument.AFTER,
        )
        return int(doc["token"])

    async def current(self, lease_key: str) -> LeaseRecord | None:
        """The record of the current leader (None before the first acquisition)."""
        doc = await self.collection.find_one({"_id": lease_key})
        if doc is None:
            return None
        return LeaseRecord(int(doc.get("token", 0)), str(doc.get("holder", "")), doc.get("acquired_at"))
