"""Signing-key rotation without downtime: stage a new key, then switch in one transaction.

Why two steps: the new key and its certificate (issued by the root) are committed as
``pending`` first, so a crash at any point leaves either the old key active (and a staged
key the next run picks up) or the new one active, never none and never two (the database
allows one active key per issuer, see `keys.store`). The switch retires the old key, which
still verifies but never signs again; signers in other processes notice the new kid within
`keys.store.ACTIVE_KID_TTL` (`KeyStore.active_kid`) and reload.

The seal belongs to the key but is made by the signer (keys/ must not import it): the
``ecert keys rotate`` command makes it right after the switch, and any signer that gets
there first makes the same kind of seal itself (`signer.issue.load_identity`, first writer wins).

Scheduled rotation: `rotate_due` rotates every signing key active for longer than
``ECERT_ROTATE_AFTER_DAYS`` (default 365) or whose certificate ends within `EXPIRY_MARGIN`.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass

from .config import KeyStoreError
from .store import PLATFORM, KeyRecord, KeyStore

__all__ = [
    "Rotation", "rotate", "rotate_due", "due_keys", "rotate_after_days", "CRASH_STEPS", "CRASH_EXIT_CODE",
    "DEFAULT_ROTATE_AFTER_DAYS", "EXPIRY_MARGIN",
]

UTC = dt.timezone.utc
DEFAULT_ROTATE_AFTER_DAYS = 365
EXPIRY_MARGIN = dt.timedelta(days=30)  # rotate before the certificate runs out, whatever its age
ROTATE_AFTER_ENV = "ECERT_ROTATE_AFTER_DAYS"

# Crash-test hook: with ECERT_TEST_CRASH_AT=<step> the rotating process dies (os._exit) at that
# step, so tests can show every interruption leaves a consistent store. "switching" lies inside
# the switch transaction, between retiring the old key and activating the new one.
CRASH_ENV = "ECERT_TEST_CRASH_AT"
CRASH_STEPS = ("start", "staged", "switching", "switched", "sealed")
CRASH_EXIT_CODE = 86


def crash_point(step: str) -> None:
    """Die here if the crash test asks for this step (no cleanup, like a kill -9)."""
    if os.environ.get(CRASH_ENV) == step:
        os._exit(CRASH_EXIT_CODE)


@dataclass(frozen=True)
class Rotation:
    issuer_code: str
    old: KeyRecord | None  # None when the issuer had no active key (first key, or revoked)
    new: KeyRecord
    resumed: bool  # True: activated a key staged earlier (e.g. by a rotation that was cut short)


def rotate(
    store: KeyStore,
    issuer_code: str,
    *,
    validity_days: int | None = None,
    revoke: tuple[str, dt.datetime, str] | None = None,
) -> Rotation:
    """Replace the active signing key of ``issuer_code``; the old one is retired, or revoked in the
    same transaction with ``revoke = (its kid, cut-off, reason)`` (e.g. on key compromise).

    A key staged earlier (pending) is activated instead of a new one; ``validity_days`` then has no effect.
    """
    if issuer_code == PLATFORM:
        raise KeyStoreError("平台密钥不能在此轮换 / platform keys (root, seal maker) are not rotated by `keys rotate`")
    store.issuer(issuer_code)  # UnknownIssuer before any work
    crash_point("start")
    staged = store.pending_key(issuer_code)
    resumed = staged is not None
    if staged is None:
        staged = store.create_key(issuer_code, "signing", validity_days=validity_days, activate=False)
    crash_point("staged")
    new, old = store.switch_to(staged.kid, revoke_previous=revoke, checkpoint=lambda: crash_point("switching"))
    crash_point("switched")
    return Rotation(issuer_code=issuer_code, old=old, new=new, resumed=resumed)


def rotate_after_days(env: Mapping[str, str] = os.environ) -> int:
    """The rotation age from ``ECERT_ROTATE_AFTER_DAYS`` (whole days >= 1), default 365."""
    raw = (env.get(ROTATE_AFTER_ENV) or "").strip()
    if not raw:
        return DEFAULT_ROTATE_AFTER_DAYS
    if not raw.isdigit() or int(raw) < 1:
        raise KeyStoreError(f"{ROTATE_AFTER_ENV} 无效 / {ROTATE_AFTER_ENV}={raw!r} must be a whole number of days >= 1")
    return int(raw)


def due_keys(store: KeyStore, *, after_days: int | None = None, now: dt.datetime | None = None) -> list[KeyRecord]:
    """Active signing keys older than ``after_days`` (default: the setting) or near the end of their certificate."""
    days = rotate_after_days() if after_days is None else after_days
    if not isinstance(days, int) or days < 1:
        raise KeyStoreError("轮换周期无效 / rotation age must be a whole number of days >= 1")
    now = now or dt.datetime.now(UTC)
    return [
        r for r in store.list_keys()
        if r.role == "signing" and r.status == "active"
        and ((r.activated_at or r.created_at) <= now - dt.timedelta(days=days) or r.not_after <= now + EXPIRY_MARGIN)
    ]


def rotate_due(store: KeyStore, *, after_days: int | None = None, now: dt.datetime | None = None) -> list[Rotation]:
    """Rotate every key `due_keys` names; a key another process rotated meanwhile is skipped."""
    done = []
    for rec in due_keys(store, after_days=after_days, now=now):
        if store.active_kid(rec.issuer_code, max_age=0) != rec.kid:
            continue
        done.append(rotate(store, rec.issuer_code))
    return done


def revoke_key(store: KeyStore, kid: str, *, reason: str, at: dt.datetime | None = None,
               replace: bool = True) -> tuple[KeyRecord, Rotation | None]:
    """Revoke ``kid`` from ``at`` (default now). An active signing key is replaced in the same
    transaction (a rotation with ``revoke=``) unless ``replace`` is False. The caller makes the new
    key's seal (keys/ does not know about seals). Returns (the revoked key's record, the rotation or None)."""
    rec = store.get_key(kid)
    done = None
    if replace and rec.role == "signing" and rec.status == "active":
        at = at or dt.datetime.now(UTC).replace(microsecond=0)  # whole seconds, as `KeyStore.revoke` stores them
        done = rotate(store, rec.issuer_code, revoke=(kid, at, reason))
    else:
        store.revoke(kid, reason=reason, at=at)
    return store.get_key(kid), done
