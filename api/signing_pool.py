"""Where the CPU-bound work (sealing a licence, verifying a document) runs.

SM2 signing, OFD writing and verification are pure Python/C work that holds the GIL,
so running them on the event loop, or in its thread pool, would let one large batch
slow every other request of that worker. They run instead in a pool of *processes*
(``ECERT_SIGN_WORKERS``, spawned, each with its own keystore connection: SQLite WAL or
PostgreSQL share the state), and the async endpoints only await the results. With
``sign_workers=0`` the same functions run in the thread pool (tests, tiny setups).

Results cross the process boundary as plain dicts, never as exceptions: a record's
field errors are a normal answer, and the keystore's problems become a
``{"unavailable": ...}`` the API turns into 503.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import threading
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable

from starlette.concurrency import run_in_threadpool

from keys.config import Settings
from keys.store import KeyStore, KeyStoreError, UnknownIssuer
from signer.licence_status import TransitionError
from ofd.licence.errors import ConfigError, LicenceError, field_error

log = logging.getLogger("ecert.api")


class Unavailable(Exception):
    """Signing cannot run right now (keystore or pool problem); the API answers 503."""

    def __init__(self, message_zh: str, message_en: str):
        super().__init__(message_zh, message_en)
        self.message_zh, self.message_en = message_zh, message_en


class WorkContext:
    """One process's keystore and one `LicenceIssuer` per issuer code (made on first use)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._store: KeyStore | None = None
        self._issuers: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def store(self) -> KeyStore:
        with self._lock:
            if self._store is None:
                self._store = KeyStore(self.settings)
            return self._store

    @property
    def registry(self):
        """The licence registry and issuance log (same database as the keystore)."""
        from signer.registry import Registry

        with self._lock:
            reg = getattr(self, "_registry", None)
        if reg is None:
            reg = Registry(self.store)
            with self._lock:
                self._registry = getattr(self, "_registry", None) or reg
        return self._registry

    def issuer(self, code: str):
        """The issuer's `LicenceIssuer`, made afresh when its active key changed (rotation or
        revocation by another process), so a long-lived worker never signs with a retired key."""
        from signer.issue import LicenceIssuer

        store = self.store
        active = store.active_key(code).kid  # UnknownIssuer / NoActiveKey before anything is cached
        with self._lock:
            cached = self._issuers.get(code)
            if cached is None or cached.identity().kid != active:
                cached = self._issuers[code] = LicenceIssuer(store, code)
            return cached

    def issue(self, record: dict) -> dict:
        """Validate and seal one record: {"identifier", "data", ...} or {"errors": [...]}."""
        from ofd.licence.model import validate_record

        try:
            lic = validate_record(record)
            out = self.registry.issue_file(self.issuer(lic.issuer_code), lic)
            issued = out.issued
        except LicenceError as exc:
            return {"errors": exc.as_dicts()}
        except TransitionError as exc:  # e.g. re-issuing a revoked licence unchanged
            return {"errors": [{"field": "record", "code": exc.code, "message_zh": exc.message_zh,
                                "message_en": exc.message_en}]}
        except UnknownIssuer:
            err = field_error("issuer_code", "unknown_issuer", "本服务没有该发证机关的签章密钥",
                              "this service holds no signing key for that issuer")
            return {"errors": [err.as_dict()]}
        except (KeyStoreError, ConfigError) as exc:
            log.error("signing unavailable: %s", exc)
            return {"unavailable": ["签章服务暂不可用", "signing is unavailable (see the server log)"]}
        lic = issued.licence
        return {
            "identifier": issued.identifier,
            "data": issued.data,
            "sm3": issued.sm3_hex,
            "kid": issued.kid,
            "issuer_code": lic.issuer_code,
            "signed_at": issued.signed_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "development": lic.is_development,
            "licence": lic.public_view(),
            "registered": out.created,  # False: the same record was issued before (same identifier)
        }

    def verify(self, data: bytes) -> dict:
        """The verification report of ``data`` against our roots and keys' revocation state."""
        from keys.sm3 import sm3
        from verifier.ofd_verify import verify_ofd
        from verifier.trust import trust_from_store

        try:
            trust = trust_from_store(self.store)
        except KeyStoreError as exc:
            log.error("keystore unavailable for verification: %s", exc)
            return {"unavailable": ["验证服务暂不可用", "verification is unavailable (see the server log)"]}
        report = verify_ofd(data, trust).to_dict()
        report["document"] = {"size": len(data), "sm3": sm3(data).hex()}
        return report

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


# ---------------------------------------------------------------- pool processes

_CHILD: WorkContext | None = None


def _child_init(settings: Settings) -> None:
    global _CHILD
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the server, which stops us
    _CHILD = WorkContext(settings)


def _child_ready() -> bool:
    return _CHILD is not None


def _child_issue(record: dict) -> dict:
    return _CHILD.issue(record)


def _child_verify(data: bytes) -> dict:
    return _CHILD.verify(data)


class SigningPool:
    """Runs `WorkContext.issue` / `.verify` in worker processes (or threads when ``processes=0``)."""

    def __init__(self, settings: Settings, processes: int):
        self.settings = settings
        self.processes = processes
        self.local = WorkContext(settings)  # used by this process (tokens, thread mode)
        self._executor: Executor | None = None
        self._lock = threading.Lock()

    def _pool(self) -> Executor:
        with self._lock:
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    max_workers=self.processes,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_child_init,
                    initargs=(self.settings,),
                )
            return self._executor

    def warm(self) -> None:
        """Start the worker processes now (at server start) rather than on the first request."""
        if self.processes:
            pool = self._pool()
            for _ in range(self.processes):
                pool.submit(_child_ready)

    async def _run(self, child_fn: Callable, local_fn: Callable, arg) -> dict:
        if self.processes == 0:
            result = await run_in_threadpool(local_fn, arg)
        else:
            pool = self._pool()
            try:
                result = await asyncio.wrap_future(pool.submit(child_fn, arg))
            except BrokenProcessPool:
                log.error("a signing process died; the pool is restarted")
                with self._lock:
                    if self._executor is pool:
                        self._executor = None
                pool.shutdown(wait=False, cancel_futures=True)
                raise Unavailable("签章进程异常退出，请重试", "a signing process died; please retry") from None
        if "unavailable" in result:
            raise Unavailable(*result["unavailable"])
        return result

    async def issue(self, record: dict) -> dict:
        return await self._run(_child_issue, self.local.issue, record)

    async def verify(self, data: bytes) -> dict:
        return await self._run(_child_verify, self.local.verify, data)

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        self.local.close()
