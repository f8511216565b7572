"""The append-only, tamper-evident issuance log (Certificate-Transparency style, with SM3).

Every registry change is one entry: ``seq`` (1, 2, ...), type (issue | reissue | revoke |
cancel), the licence identifier, the time and a JSON payload. Its bytes are canonical
JSON (sorted keys, UTF-8, no spaces) of all five, so a changed column changes the hash.
Each stored row carries three hashes:

* ``leaf_hash``  = SM3(0x00 || entry bytes)                  (RFC 9162 leaf);
* ``chain_hash`` = SM3(previous chain_hash || leaf_hash)     (32 zero bytes before seq 1);
* ``tree_root``  = Merkle tree hash over leaves 1..seq       (RFC 9162 §2.1 with SM3).

The head (size, chain head, Merkle frontier) lives in ``registry_meta`` and is updated in
the same transaction, so truncating the table is found too. A *signed tree head* (root
key, SM2) published or handed to an auditor pins the log: a later check against it finds
even a rewrite of the whole database, and inclusion / consistency proofs show one entry
or an older head belongs to the current tree without trusting the server.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection

from keys import sm2
from keys.sm3 import sm3
from keys.store import KeyStore

from . import merkle
from .registry_db import RegistryDB, RegistryError, iso, log_t

KINDS = ("issue", "reissue", "revoke", "cancel")
GENESIS = bytes(32)
LOG_ID = "ecert issuance log v1"
_SIZE, _CHAIN, _FRONTIER = "log_size", "log_chain_head", "log_frontier"


def canonical_json(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class LogEntry:
    seq: int
    kind: str
    identifier: str
    at: str  # ISO UTC, second precision
    payload: dict
    leaf_hash: bytes = b""
    chain_hash: bytes = b""
    tree_root: bytes = b""

    def entry_bytes(self) -> bytes:
        return canonical_json({"v": 1, "seq": self.seq, "type": self.kind, "identifier": self.identifier,
                               "at": self.at, "payload": self.payload})

    def to_dict(self) -> dict:
        return {"seq": self.seq, "type": self.kind, "identifier": self.identifier, "at": self.at,
                "payload": self.payload, "leaf_hash": self.leaf_hash.hex(), "chain_hash": self.chain_hash.hex(),
                "tree_root": self.tree_root.hex()}


@dataclass(frozen=True)
class TreeHead:
    size: int
    root: bytes
    chain_head: bytes


@dataclass(frozen=True)
class SignedTreeHead:
    """(size, root, time) signed with the platform root key; safe to publish."""

    tree_size: int
    root_hash: str  # hex
    timestamp: str
    kid: str
    signature: str  # hex DER

    def message(self) -> bytes:
        return canonical_json({"log": LOG_ID, "tree_size": self.tree_size, "root_hash": self.root_hash,
                               "timestamp": self.timestamp})

    def verify(self, public_key: sm2.PublicKey) -> bool:
        try:
            return public_key.verify(self.message(), bytes.fromhex(self.signature))
        except (ValueError, sm2.SM2Error):
            return False

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class InclusionProof:
    seq: int
    tree_size: int
    leaf_hash: bytes
    path: list[bytes]
    root: bytes

    def verify(self) -> bool:
        return merkle.verify_inclusion(self.leaf_hash, self.seq - 1, self.tree_size, self.path, self.root)

    def to_dict(self) -> dict:
        return {"seq": self.seq, "tree_size": self.tree_size, "leaf_hash": self.leaf_hash.hex(),
                "path": [p.hex() for p in self.path], "root": self.root.hex()}


@dataclass(frozen=True)
class LogProblem:
    seq: int | None
    code: str
    message_zh: str
    message_en: str

    def __str__(self) -> str:
        where = f"seq {self.seq}: " if self.seq is not None else ""
        return f"{where}{self.message_zh} / {self.message_en}"


@dataclass(frozen=True)
class LogCheck:
    """Outcome of `IssuanceLog.verify`: ok, or the first bad entry and every problem found."""

    size: int
    root: bytes
    problems: list[LogProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad_seq(self) -> int | None:
        seqs = [p.seq for p in self.problems if p.seq is not None]
        return min(seqs) if seqs else None

    @property
    def message(self) -> str:
        if self.ok:
            return f"日志完整：{self.size} 条记录 / log intact: {self.size} entries, root {self.root.hex()}"
        return str(self.problems[0])

    def to_dict(self) -> dict:
        return {"ok": self.ok, "size": self.size, "root": self.root.hex(), "first_bad_seq": self.first_bad_seq,
                "problems": [p.__dict__ for p in self.problems]}


class AppendBatch:
    """Hashes entries as they are added (each sees the tree so far); `flush` writes them and the head."""

    def __init__(self, log: IssuanceLog, c: Connection, size: int, chain: bytes, frontier: merkle.Frontier):
        self.log, self.c, self.size, self.chain, self.frontier = log, c, size, chain, frontier
        self.entries: list[LogEntry] = []

    def add(self, kind: str, identifier: str, at: str, payload: dict) -> LogEntry:
        if kind not in KINDS:
            raise RegistryError("日志记录类型无效", f"invalid log entry type {kind!r}", "kind")
        draft = LogEntry(self.size + 1, kind, identifier, at, payload)
        leaf = merkle.SM3_HASHER.leaf(draft.entry_bytes())
        self.chain = sm3(self.chain, leaf)
        self.frontier.append(leaf)
        self.size += 1
        entry = LogEntry(draft.seq, kind, identifier, at, payload, leaf, self.chain, self.frontier.root())
        self.entries.append(entry)
        return entry

    def flush(self) -> list[LogEntry]:
        out, self.entries = self.entries, []
        if out:
            self.c.execute(insert(log_t), [
                {"seq": e.seq, "kind": e.kind, "identifier": e.identifier, "at": e.at,
                 "payload": canonical_json(e.payload).decode("utf-8"), "leaf_hash": e.leaf_hash,
                 "chain_hash": e.chain_hash, "tree_root": e.tree_root} for e in out
            ])
            self.log.db.put_meta(self.c, {_SIZE: str(self.size).encode(), _CHAIN: self.chain,
                                          _FRONTIER: self.frontier.to_bytes()})
        return out


def _entry(row) -> LogEntry:
    return LogEntry(row.seq, row.kind, row.identifier, row.at, json.loads(row.payload), bytes(row.leaf_hash),
                    bytes(row.chain_hash), bytes(row.tree_root))


class IssuanceLog:
    """Appends (inside the caller's write transaction), reads, proofs and the full check."""

    def __init__(self, db: RegistryDB):
        self.db = db

    # ---- head and append

    def _state(self, c: Connection) -> tuple[int, bytes, merkle.Frontier]:
        try:
            size = int(self.db.get_meta(c, _SIZE) or b"0")
            chain = self.db.get_meta(c, _CHAIN) or GENESIS
            return size, chain, merkle.Frontier.from_bytes(size, self.db.get_meta(c, _FRONTIER) or b"")
        except (ValueError, merkle.MerkleError) as exc:
            raise RegistryError("日志头已损坏，请运行 `ecert log verify`",
                                f"the log head is damaged ({exc}); run `ecert log verify`", "head") from None

    def head(self) -> TreeHead:
        with self.db.tx() as c:
            size, chain, frontier = self._state(c)
        return TreeHead(size, frontier.root(), chain)

    def append(self, c: Connection, items: Iterable[tuple[str, str, str, dict]],
               check: Callable[[LogEntry], object] | None = None) -> list[LogEntry]:
        """Append (kind, identifier, at, payload) items; ``check`` sees each entry first and may raise,
        which rolls the caller's transaction back. ``c`` must hold the registry write lock."""
        batch = self.batch(c)
        for item in items:
            entry = batch.add(*item)
            if check is not None:
                check(entry)
        return batch.flush()

    def batch(self, c: Connection) -> "AppendBatch":
        """Entries added one by one and written with one INSERT and one head update (bulk issuing)."""
        return AppendBatch(self, c, *self._state(c))

    # ---- reading

    def entries(self, start: int = 1, limit: int | None = None, identifier: str | None = None) -> list[LogEntry]:
        q = select(log_t).where(log_t.c.seq >= start).order_by(log_t.c.seq)
        if identifier is not None:
            q = q.where(log_t.c.identifier == identifier)
        if limit is not None:
            q = q.limit(limit)
        with self.db.tx() as c:
            return [_entry(r) for r in c.execute(q)]

    def _leaves(self, size: int) -> list[bytes]:
        with self.db.tx() as c:
            rows = c.execute(select(log_t.c.leaf_hash).where(log_t.c.seq <= size).order_by(log_t.c.seq)).all()
        if len(rows) != size:
            raise RegistryError("日志不完整，无法生成证明", f"the log has {len(rows)} of {size} entries: run "
                                "`ecert log verify`", "log_incomplete")
        return [bytes(r[0]) for r in rows]

    def _size(self, tree_size: int | None) -> int:
        size = self.head().size
        if tree_size is None:
            return size
        if not 0 < tree_size <= size:
            raise RegistryError(f"树大小 {tree_size} 超出日志范围 1..{size}",
                                f"tree size {tree_size} is outside 1..{size}", "out_of_range")
        return tree_size

    def inclusion_proof(self, seq: int, tree_size: int | None = None) -> InclusionProof:
        """Proof that entry ``seq`` is in the tree of ``tree_size`` entries (default: the whole log)."""
        size = self._size(tree_size)
        if not 1 <= seq <= size:
            raise RegistryError(f"日志中没有第 {seq} 条记录", f"no entry {seq} in a log of {size}", "out_of_range")
        leaves = self._leaves(size)
        return InclusionProof(seq, size, leaves[seq - 1], merkle.inclusion_proof(seq - 1, leaves),
                              merkle.tree_root(leaves))

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """Proof that the log of ``old_size`` entries is a prefix of the one of ``new_size``."""
        size = self._size(new_size)
        if not 0 < old_size <= size:
            raise RegistryError(f"旧树大小 {old_size} 超出范围", f"old size {old_size} is outside 1..{size}",
                                "out_of_range")
        return merkle.consistency_proof(old_size, self._leaves(size))

    def sign_head(self, store: KeyStore, when=None) -> SignedTreeHead:
        """The current head signed with the platform root key."""
        head = self.head()
        root = store.root()
        unsigned = SignedTreeHead(head.size, head.root.hex(), iso(when), root.kid, "")
        sig = store.private_key(root.kid).sign(unsigned.message())
        return SignedTreeHead(head.size, head.root.hex(), unsigned.timestamp, root.kid, sig.hex())

    # ---- the full check

    def verify(self, replay: Callable[[LogEntry], None] | None = None,
               pinned: SignedTreeHead | None = None) -> LogCheck:
        """Re-hash every entry, re-chain, rebuild the tree and compare with every stored hash and the head;
        ``replay`` sees each good entry in order; ``pinned`` must be a head of this log's history."""
        problems: list[LogProblem] = []
        frontier = merkle.Frontier()
        chain = GENESIS
        with self.db.tx() as c:
            try:
                size, stored_chain, stored_frontier = self._state(c)
            except RegistryError:
                size, stored_chain, stored_frontier = -1, b"", None
            rows = c.execute(select(log_t).order_by(log_t.c.seq))
            for expected, row in enumerate(rows, start=1):
                problem = self._check_row(row, expected, chain, frontier, replay)
                if problem is not None:
                    problems.append(problem)
                    break
                chain = bytes(row.chain_hash)
                if pinned is not None and expected == pinned.tree_size and frontier.root().hex() != pinned.root_hash:
                    problems.append(LogProblem(None, "pinned_head", "日志与已签名的树头不一致（历史被改写）",
                                               f"the log's first {expected} entries do not match the signed tree head "
                                               "(history rewritten)"))
                    break
            count = c.scalar(select(func.count()).select_from(log_t))
        if not problems:
            problems += self._check_head(size, count, frontier, chain, stored_chain, stored_frontier, pinned)
        return LogCheck(frontier.size, frontier.root(), problems)

    @staticmethod
    def _check_row(row, expected: int, chain: bytes, frontier: merkle.Frontier, replay) -> LogProblem | None:
        if row.seq != expected:
            return LogProblem(expected, "missing", f"第 {expected} 条记录缺失（被删除）",
                              f"entry {expected} is missing (deleted); next stored is {row.seq}")
        try:
            entry = _entry(row)
            leaf = merkle.SM3_HASHER.leaf(entry.entry_bytes())
        except (ValueError, TypeError) as exc:
            return LogProblem(expected, "unreadable", "记录无法解析", f"entry is unreadable: {exc}")
        if leaf != entry.leaf_hash:
            return LogProblem(expected, "altered", "记录内容被修改（哈希不符）",
                              "entry was altered: its SM3 leaf hash does not match its content")
        if sm3(chain, leaf) != entry.chain_hash:
            return LogProblem(expected, "chain", "哈希链断裂", "the hash chain is broken at this entry")
        frontier.append(leaf)
        if frontier.root() != entry.tree_root:
            return LogProblem(expected, "tree_root", "默克尔树根不符", "the stored Merkle tree root is wrong")
        if replay is not None:
            try:
                replay(entry)
            except RegistryError as exc:
                return LogProblem(expected, "transition", f"记录不是合法的状态变更：{exc.message_zh}",
                                  f"entry is not a legal status change: {exc.message_en}")
        return None

    @staticmethod
    def _check_head(size, count, frontier, chain, stored_chain, stored_frontier, pinned) -> list[LogProblem]:
        n = frontier.size
        if stored_frontier is None:
            return [LogProblem(None, "head", "日志头已损坏", "the stored log head is malformed")]
        if size != count or size != n:
            first = min(size, n) + 1
            code, zh, en = ("truncated", "记录被删除", "entries deleted") if count < size else \
                ("head", "日志头被改动", "head altered")
            return [LogProblem(first, code, f"日志头记录 {size} 条，实际 {count} 条（{zh}）",
                               f"the log head says {size} entries but {count} are stored ({en})")]
        if stored_chain != chain or stored_frontier.roots != frontier.roots:
            return [LogProblem(None, "head", "日志头与记录不符", "the stored log head does not match the entries")]
        if pinned is not None and pinned.tree_size > n:
            return [LogProblem(None, "pinned_head", f"已签名的树头有 {pinned.tree_size} 条记录，日志只有 {n} 条",
                               f"the signed tree head covers {pinned.tree_size} entries but the log has {n}")]
        return []
