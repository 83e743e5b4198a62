"""Token vault: Meta access tokens encrypted at rest in MongoDB (DESIGN.md R9, META_GRAPH_API.md §5).

Collection ``tokens``, one document per ad account::

    {_id: "<numeric account id>",          # plaintext: the lookup key, and the AES-GCM associated data
     schema: 1,
     kid: "k2026a",                        # id of the key the ciphertext is under
     nonce: Binary(12 bytes),              # random per encryption (96-bit, NIST SP 800-38D §8.2.2)
     ciphertext: Binary,                   # AES-256-GCM(payload JSON) incl. the 16-byte tag
     generation: 7,                        # +1 on every new token (put / refresh); guards concurrent writers
     status: "valid" | "invalid",          # "invalid" after Meta answered 190 for this generation
     invalid_reason: "code 190/460 ..."?,  # Meta's words, redacted; never the token
     invalid_since: datetime?,
     refresh_due_at: datetime | null,      # when the refresher should act (exchange, or learn the expiry)
     updated_at: datetime}

The encrypted payload is JSON ``{"account_id", "access_token", "token_type",
"expires_at" (ISO-8601 UTC, "never", or null = unknown), "issued_at",
"refresh": {"method": "fb_exchange_token" | "none", "refresh_token"?}}``: the
token, its refresh/exchange data, its expiry and its account. The account id
is also the associated data, so a ciphertext copied onto another account's
document does not decrypt. Plaintext fields (status, due time, key id) are
what the fetcher and the refresher query on; altering them cannot reveal or
swap a token.

Keys (``Keyring``): ``TOKEN_KEYS="kid1:<base64 32 bytes>,kid2:<base64 32 bytes>"``
and ``TOKEN_ACTIVE_KEY=kid2``. Documents decrypt under any configured key and
are always (re-)encrypted under the active one. Rotation without downtime:

1. deploy every replica with both keys, the new one active (reads of old
   documents keep working, new writes use the new key);
2. run ``rotate`` (``python -m services.meta_fetcher.token_admin rotate``): each
   document not under the active key is decrypted and re-encrypted with a
   fresh nonce, written back only if it did not change meanwhile
   (compare-and-swap on kid + nonce); idempotent, safe while serving;
3. drop the old key from ``TOKEN_KEYS`` (retired).

Errors (``TokenVaultError`` subclasses; messages never contain a token or key):
``TokenKeyConfigError`` (bad ``TOKEN_KEYS``/``TOKEN_ACTIVE_KEY``),
``TokenKeyUnknown`` (a document is under a key that is not configured),
``TokenDecryptError`` (authentication failed: ciphertext, nonce or account id
altered, or the wrong key; nothing was decrypted).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping

from bson.binary import Binary
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pymongo import ASCENDING

from services.common.account_ids import normalise_account_id
from services.common.l2_schema import check, quarantine_record

COLLECTION = "tokens"
SCHEMA = 1
KEY_BYTES = 32      # AES-256
NONCE_BYTES = 12    # 96-bit nonce, random per encryption
KID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
VALID, INVALID = "valid", "invalid"
NEVER = "never"


class TokenVaultError(Exception):
    """Anything the vault raises; messages never contain token or key material."""


class TokenKeyConfigError(TokenVaultError, ValueError):
    """``TOKEN_KEYS`` / ``TOKEN_ACTIVE_KEY`` are malformed; the message names the entry."""


class TokenKeyUnknown(TokenVaultError):
    """A stored token is under a key id that is not configured (retired too early?)."""


class TokenDecryptError(TokenVaultError):
    """AES-GCM authentication failed: the record was altered or the key is wrong. Nothing was decrypted."""


def _b64decode(text: str) -> bytes:
    text = text.strip()
    padded = text + "=" * (-len(text) % 4)
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None


@dataclass(frozen=True)
class Keyring:
    """AES-256-GCM keys by key id, and the id new encryptions use. ``repr`` shows key ids only."""

    keys: Mapping[str, bytes] = field(repr=False)
    active: str

    def __post_init__(self) -> None:
        if not self.keys:
            raise TokenKeyConfigError("no token keys configured: set TOKEN_KEYS=\"kid:<base64 of 32 random bytes>\"")
        for kid, key in self.keys.items():
            if not KID_RE.match(kid):
                raise TokenKeyConfigError(f"key id {kid!r} must be 1-64 letters, digits, '.', '_' or '-'")
            if len(key) != KEY_BYTES:
                raise TokenKeyConfigError(f"key {kid!r} is {len(key)} bytes; AES-256 needs exactly {KEY_BYTES}")
        if self.active not in self.keys:
            raise TokenKeyConfigError(f"TOKEN_ACTIVE_KEY={self.active!r} is not among the configured key ids "
                                      f"({', '.join(sorted(self.keys))})")

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Configured key ids, sorted."""
        return tuple(sorted(self.keys))

    @classmethod
    def parse(cls, token_keys: str, active: str | None = None) -> "Keyring":
        """From ``TOKEN_KEYS`` ("kid1:base64,kid2:base64") and ``TOKEN_ACTIVE_KEY``.

        With one key and no active id, that key is active. Raises
        TokenKeyConfigError naming the entry (never its value) when an entry has
        no ``:``, a key id repeats, a key is not base64 or not 32 bytes, or the
        active id is missing/unknown.
        """
        keys: dict[str, bytes] = {}
        entries = [e.strip() for e in (token_keys or "").split(",") if e.strip()]
        for n, entry in enumerate(entries, start=1):
            kid, sep, b64 = entry.partition(":")
            kid = kid.strip()
            if not sep or not kid:
                raise TokenKeyConfigError(f"TOKEN_KEYS entry {n} is not 'kid:base64key'")
            if kid in keys:
                raise TokenKeyConfigError(f"TOKEN_KEYS names key id {kid!r} twice")
            try:
                keys[kid] = _b64decode(b64)
            except ValueError:
                raise TokenKeyConfigError(f"TOKEN_KEYS entry {n} (key id {kid!r}): the key is not base64") from None
        if not keys:
            raise TokenKeyConfigError("no token keys configured: set TOKEN_KEYS=\"kid:<base64 of 32 random bytes>\"")
        if active is None or not active.strip():
            if len(keys) != 1:
                raise TokenKeyConfigError("TOKEN_ACTIVE_KEY is required when TOKEN_KEYS holds several keys")
            active = next(iter(keys))
        return cls(keys=keys, active=active.strip())

    @staticmethod
    def generate_key() -> str:
        """A new random AES-256 key, standard base64 (for a ``TOKEN_KEYS`` entry)."""
        return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()

    def encrypt(self, account_id: str, plaintext: bytes) -> tuple[str, bytes, bytes]:
        """(active key id, fresh random nonce, ciphertext+tag) with ``account_id`` as associated data."""
        nonce = os.urandom(NONCE_BYTES)
        ct = AESGCM(self.keys[self.active]).encrypt(nonce, plaintext, account_id.encode())
        return self.active, nonce, ct

    def decrypt(self, account_id: str, kid: str, nonce: bytes, ciphertext: bytes) -> bytes:
        """The plaintext, or TokenKeyUnknown / TokenDecryptError (nothing decrypted)."""
        key = self.keys.get(kid)
        if key is None:
            raise TokenKeyUnknown(
                f"the token of act_{account_id} is under key {kid!r}, which is not configured (known: "
                f"{', '.join(self.key_ids)}); add it back to TOKEN_KEYS, or store a new token")
        if len(nonce) != NONCE_BYTES:
            raise TokenDecryptError(f"the token record of act_{account_id} has a {len(nonce)}-byte nonce, not "
                                    f"{NONCE_BYTES}: the record was altered; nothing was decrypted; store a new token")
        try:
            return AESGCM(key).decrypt(nonce, ciphertext, account_id.encode())
        except InvalidTag:
            raise TokenDecryptError(
                f"the token record of act_{account_id} failed AES-GCM authentication under key {kid!r}: its "
                "ciphertext, nonce or account id was altered (or the key is not the one it was encrypted with); "
                "nothing was decrypted; store a new token") from None


@dataclass(frozen=True)
class StoredToken:
    """A decrypted vault entry. ``access_token`` and ``refresh_token`` are hidden from ``repr``.

    ``expires_at``: UTC datetime, or None with ``never_expires`` True (system
    user tokens), or None with ``never_expires`` False (not known yet: the
    refresher asks ``debug_token``).
    """

    account_id: str
    access_token: str = field(repr=False)
    token_type: str = "user"
    expires_at: datetime | None = None
    never_expires: bool = False
    issued_at: datetime | None = None
    refresh_method: str = "fb_exchange_token"
    refresh_token: str | None = field(default=None, repr=False)
    status: str = VALID
    invalid_reason: str | None = None
    invalid_since: datetime | None = None
    key_id: str = ""
    generation: int = 0
    refresh_due_at: datetime | None = None

    @property
    def valid(self) -> bool:
        return self.status == VALID

    def expired(self, now: datetime) -> bool:
        """True when the expiry is known and past."""
        return self.expires_at is not None and self.expires_at <= now


@dataclass(frozen=True)
class RotationReport:
    """What ``rotate`` did: documents re-encrypted, already under the active key, left (changed meanwhile)."""

    rotated: int = 0
    already_active: int = 0
    skipped_changed: int = 0


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(timezone.utc).isoformat()


def _from_iso(value: Any) -> datetime | None:
    if not value or value == NEVER:
        return None
    return datetime.fromisoformat(value).astimezone(timezone.utc)


def _utc(value: datetime | None) -> datetime | None:
    """UTC, truncated to milliseconds (BSON dates hold milliseconds, so stored and returned values agree)."""
    if value is None:
        return None
    value = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


class TokenVault:
    """Encrypted token documents in ``<db>.tokens``; see the module docstring for the shape.

    ``collection``: a pymongo ``AsyncCollection`` (client made with ``tz_aware=True``).
    ``refresh_before_s``: a token's refresh is due this long before it expires.
    """

    def __init__(self, collection: Any, keyring: Keyring, *, refresh_before_s: float = 7 * 86400.0,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.collection = collection
        self.keyring = keyring
        self.refresh_before = timedelta(seconds=refresh_before_s)
        self._now = lambda: _utc(clock())

    @classmethod
    def from_client(cls, client: Any, database: str, keyring: Keyring, **kwargs: Any) -> "TokenVault":
        """The vault in ``client[database].tokens``."""
        return cls(client[database][COLLECTION], keyring, **kwargs)

    async def ensure_indexes(self) -> None:
        """Indexes for the refresher (status + due time) and for rotation (key id)."""
        await self.collection.create_index([("status", ASCENDING), ("refresh_due_at", ASCENDING)])
        await self.collection.create_index([("kid", ASCENDING)])

    # ------------------------------------------------------------------ writing

    def _due(self, expires_at: datetime | None, never: bool, now: datetime) -> datetime | None:
        if never:
            return None
        if expires_at is None:
            return now  # expiry unknown: the refresher asks debug_token at once
        return expires_at - self.refresh_before

    def _sealed(self, account: str, token: str, *, token_type: str, expires_at: datetime | None, never: bool,
                issued_at: datetime, refresh_method: str, refresh_token: str | None) -> dict[str, Any]:
        payload = {
            "account_id": account, "access_token": token, "token_type": token_type,
            "expires_at": NEVER if never else _iso(expires_at), "issued_at": _iso(issued_at),
            "refresh": {"method": refresh_method, **({"refresh_token": refresh_token} if refresh_token else {})},
        }
        kid, nonce, ct = self.keyring.encrypt(account, json.dumps(payload, separators=(",", ":")).encode())
        return {"schema": SCHEMA, "kid": kid, "nonce": Binary(nonce), "ciphertext": Binary(ct)}

    async def put(self, account_id: str, access_token: str, *, expires_at: datetime | None = None,
                  never_expires: bool = False, token_type: str = "user", refresh_method: str = "fb_exchange_token",
                  refresh_token: str | None = None) -> StoredToken:
        """Store a new token for ``account_id`` (replacing any), valid, under the active key.

        ``expires_at`` None and ``never_expires`` False = expiry unknown (the
        refresher learns it with debug_token). Raises ValueError for an empty
        token or a bad account id (InvalidAccountId).
        """
        account = normalise_account_id(account_id)
        token = (access_token or "").strip()
        if not token or any(c.isspace() for c in token):
            raise ValueError("the token is empty or contains whitespace")
        now = self._now()
        expires_at = _utc(expires_at)
        sealed = self._sealed(account, token, token_type=token_type, expires_at=expires_at, never=never_expires,
                              issued_at=now, refresh_method=refresh_method, refresh_token=refresh_token)
        doc = await self.collection.find_one_and_update(
            {"_id": account},
            {"$set": {**sealed, "status": VALID, "invalid_reason": None, "invalid_since": None,
                      "refresh_due_at": self._due(expires_at, never_expires, now), "updated_at": now},
             "$inc": {"generation": 1}},
            upsert=True, return_document=True)
        return self._open(doc)

    async def replace_token(self, account_id: str, generation: int, access_token: str, *,
                            expires_at: datetime | None, never_expires: bool = False) -> bool:
        """After a refresh: store ``access_token`` if the entry is still at ``generation`` (else False).

        Keeps token type and refresh method. A concurrent ``put`` or refresh wins; the caller's token is dropped.
        """
        current = await self.get(account_id)
        if current is None or current.generation != generation:
            return False
        now = self._now()
        expires_at = _utc(expires_at)
        sealed = self._sealed(current.account_id, access_token, token_type=current.token_type,
                              expires_at=expires_at, never=never_expires, issued_at=now,
                              refresh_method=current.refresh_method, refresh_token=current.refresh_token)
        result = await self.collection.update_one(
            {"_id": current.account_id, "generation": generation},
            {"$set": {**sealed, "status": VALID, "invalid_reason": None, "invalid_since": None,
                      "refresh_due_at": self._due(expires_at, never_expires, now), "updated_at": now},
             "$inc": {"generation": 1}})
        return result.modified_count == 1

    async def set_expiry(self, account_id: str, generation: int, *, expires_at: datetime | None,
                         never_expires: bool) -> bool:
        """Record the expiry learnt from debug_token (same token, new ciphertext); False if the entry moved on."""
        current = await self.get(account_id)
        if current is None or current.generation != generation:
            return False
        now = self._now()
        expires_at = _utc(expires_at)
        sealed = self._sealed(current.account_id, current.access_token, token_type=current.token_type,
                              expires_at=expires_at, never=never_expires,
                              issued_at=current.issued_at or now, refresh_method=current.refresh_method,
                              refresh_token=current.refresh_token)
        result = await self.collection.update_one(
            {"_id": current.account_id, "generation": generation},
            {"$set": {**sealed, "refresh_due_at": self._due(expires_at, never_expires, now), "updated_at": now}})
        return result.modified_count == 1

    async def postpone_refresh(self, account_id: str, generation: int, until: datetime) -> bool:
        """Move the due time of ``generation`` to ``until`` (after a refresh attempt that failed transiently)."""
        result = await self.collection.update_one(
            {"_id": normalise_account_id(account_id), "generation": generation},
            {"$set": {"refresh_due_at": until, "updated_at": self._now()}})
        return result.modified_count == 1

    async def mark_invalid(self, account_id: str, generation: int, reason: str) -> bool:
        """Meta rejected ``generation`` of this account's token (code 190): later reads fail fast.

        Only that generation is marked: a token stored since is left alone.
        ``reason`` must already be redacted. Returns True when a document changed.
        """
        now = self._now()
        result = await self.collection.update_one(
            {"_id": normalise_account_id(account_id), "generation": generation, "status": VALID},
            {"$set": {"status": INVALID, "invalid_reason": reason[:500], "invalid_since": now,
                      "refresh_due_at": None, "updated_at": now}})
        return result.modified_count == 1

    async def delete(self, account_id: str) -> bool:
        """Forget the account's token; the fetcher falls back to META_ACCESS_TOKEN."""
        result = await self.collection.delete_one({"_id": normalise_account_id(account_id)})
        return result.deleted_count == 1

    # ------------------------------------------------------------------ reading

    def _open(self, doc: Mapping[str, Any]) -> StoredToken:
        account = str(doc["_id"])
        plaintext = self.keyring.decrypt(account, str(doc.get("kid")), bytes(doc.get("nonce") or b""),
                                         bytes(doc.get("ciphertext") or b""))
        try:
            payload = json.loads(plaintext)
            if payload.get("account_id") != account:
                raise ValueError
            token = payload["access_token"]
            refresh = payload.get("refresh") or {}
        except (ValueError, KeyError, TypeError, AttributeError):
            raise TokenDecryptError(f"the token record of act_{account} decrypts to an unexpected payload; "
                                    "store a new token") from None
        return StoredToken(
            account_id=account, access_token=token, token_type=str(payload.get("token_type") or "user"),
            expires_at=_from_iso(payload.get("expires_at")), never_expires=payload.get("expires_at") == NEVER,
            issued_at=_from_iso(payload.get("issued_at")),
            refresh_method=str(refresh.get("method") or "none"), refresh_token=refresh.get("refresh_token"),
            status=str(doc.get("status") or VALID), invalid_reason=doc.get("invalid_reason"),
            invalid_since=_utc(doc.get("invalid_since")), key_id=str(doc.get("kid")),
            generation=int(doc.get("generation") or 0), refresh_due_at=_utc(doc.get("refresh_due_at")))

    async def get(self, account_id: str) -> StoredToken | None:
        """The decrypted entry of ``account_id`` or None. Raises TokenKeyUnknown / TokenDecryptError."""
        doc = await self.collection.find_one({"_id": normalise_account_id(account_id)})
        if doc is None:
            return None
        reason = check("tokens", doc)
        if reason is not None:  # copied to quarantine with the reason; the record stays for the operator
            await self.collection.database["quarantine"].replace_one(
                {"_id": f"tokens:{doc['_id']}"}, quarantine_record("tokens", doc, reason), upsert=True)
            raise TokenDecryptError(f"the token record of act_{doc['_id']} is malformed ({reason}), nothing was "
                                    "decrypted; it was quarantined: store a new token (token_admin put)")
        return self._open(doc)

    async def describe(self, account_id: str) -> dict[str, Any] | None:
        """Plaintext metadata of the entry (no decryption, no token): kid, status, generation, due time."""
        doc = await self.collection.find_one({"_id": normalise_account_id(account_id)},
                                             {"nonce": 0, "ciphertext": 0})
        return None if doc is None else {k: v for k, v in doc.items()}

    async def due_for_refresh(self, now: datetime | None = None, limit: int = 100) -> list[str]:
        """Account ids whose valid token is due (``refresh_due_at <= now``), soonest first."""
        now = now or self._now()
        cursor = self.collection.find({"status": VALID, "refresh_due_at": {"$ne": None, "$lte": now}},
                                      {"_id": 1}).sort("refresh_due_at", ASCENDING).limit(limit)
        return [str(doc["_id"]) async for doc in cursor]

    # ------------------------------------------------------------------ rotation

    async def rotate(self) -> RotationReport:
        """Re-encrypt every entry not under the active key (fresh nonce each); idempotent.

        A document is written back only if its ``kid`` and ``nonce`` are still
        the ones read (a concurrent put/refresh already re-encrypted it under
        the active key, or changed it: it is re-read once, then counted in
        ``skipped_changed``). Raises TokenKeyUnknown / TokenDecryptError for
        an entry that cannot be opened, before writing it.
        """
        rotated = skipped = 0
        active = self.keyring.active
        already = await self.collection.count_documents({"kid": active})
        pending = [doc async for doc in self.collection.find({"kid": {"$ne": active}})]
        for doc in pending:
            for _attempt in range(2):
                plaintext = self.keyring.decrypt(str(doc["_id"]), str(doc.get("kid")), bytes(doc["nonce"]),
                                                 bytes(doc["ciphertext"]))
                kid, nonce, ct = self.keyring.encrypt(str(doc["_id"]), plaintext)
                result = await self.collection.update_one(
                    {"_id": doc["_id"], "kid": doc.get("kid"), "nonce": doc["nonce"]},
                    {"$set": {"kid": kid, "nonce": Binary(nonce), "ciphertext": Binary(ct)}})
                if result.modified_count == 1:
                    rotated += 1
                    break
                doc = await self.collection.find_one({"_id": doc["_id"]})
                if doc is None or doc.get("kid") == active:
                    break
            else:
                skipped += 1
        return RotationReport(rotated=rotated, already_active=already, skipped_changed=skipped)


def keyring_from_settings(token_keys: str | None, active: str | None) -> Keyring:
    """``Keyring.parse`` with a clear error when TOKEN_KEYS is unset."""
    if not token_keys:
        raise TokenKeyConfigError("TOKEN_KEYS is not set: generate a key with "
                                  "`python -m services.meta_fetcher.token_admin genkey --kid k1`")
    return Keyring.parse(token_keys, active)
