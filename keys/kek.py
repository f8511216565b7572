"""The key-encryption key (KEK) that keeps private keys encrypted at rest.

The KEK comes from ``ECERT_KEK`` or from a key file (created 0600 on the first run
against an empty keystore). It is never used directly: two sub-keys are derived with
HMAC-SM3 -- one wraps private keys (SM4-GCM, the key id as AAD so rows cannot be
swapped), the other gives the check value stored in the database, so a wrong KEK is
refused on open, before anything is written. Error messages never contain key bytes.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import re
import stat
from pathlib import Path

from . import sm4
from .config import KeyStoreError, Settings
from .sm3 import hmac_sm3, hmac_sm3_verify

KEK_SIZE = 16
WRAP_VERSION = b"\x01"  # first byte of every wrapped key: room for another scheme later
_CHECK_LABEL = b"ecert/kek-check/v1"
_WRAP_LABEL = b"ecert/key-wrap/v1"
_HEX = re.compile(r"[0-9A-Fa-f]{32}")


class KekError(KeyStoreError):
    """The KEK is missing, malformed, unreadable or not the one this keystore was created with."""


def parse_kek(text: str, source: str) -> bytes:
    """16 key bytes from 32 hex characters or base64 of 16 bytes; ``source`` names where it came from."""
    text = text.strip()
    if _HEX.fullmatch(text):
        return bytes.fromhex(text)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) == KEK_SIZE:
        return raw
    raise KekError(
        f"{source}: 密钥加密密钥格式错误 / malformed key-encryption key: expected 32 hex characters "
        f"or base64 of 16 bytes ({len(text)} characters given)"
    )


def generate_kek_text() -> str:
    return os.urandom(KEK_SIZE).hex()


def load_kek(settings: Settings, *, may_create: bool) -> bytes:
    """The KEK from ECERT_KEK, else from the key file; the file is created only if ``may_create``."""
    if settings.kek:
        return parse_kek(settings.kek, "ECERT_KEK")
    path = settings.kek_file
    if not path.exists():
        if not may_create:
            raise KekError(
                f"密钥加密密钥文件不存在 / key-encryption key file {path} is missing, but this keystore "
                "already holds encrypted keys: restore the file, or set ECERT_KEK / ECERT_KEK_FILE"
            )
        _create_kek_file(path)
    return _read_kek_file(path)


def _read_kek_file(path: Path) -> bytes:
    try:
        st = path.stat()
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KekError(
                f"密钥加密密钥文件权限过宽 / key-encryption key file {path} is accessible to group or "
                f"others (mode {stat.S_IMODE(st.st_mode):04o}): run `chmod 600 {path}`"
            )
        text = path.read_text("ascii")
    except KekError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        raise KekError(
            f"无法读取密钥加密密钥文件 / cannot read key-encryption key file {path}: {type(exc).__name__}"
        ) from None
    return parse_kek(text, str(path))


def _create_kek_file(path: Path) -> None:
    """Write a fresh KEK, mode 0600, atomically: a concurrent first run reads the winner's key."""
    tmp = path.with_name(f".{path.name}.{os.urandom(8).hex()}.tmp")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, (generate_kek_text() + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # atomic; fails if another process created the file first
        except FileExistsError:
            pass  # that process's key is the one: read it
    except OSError as exc:
        raise KekError(
            f"无法创建密钥加密密钥文件 / cannot create key-encryption key file {path}: {exc.strerror}"
        ) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _subkey(kek: bytes, label: bytes) -> bytes:
    return hmac_sm3(kek, label)


def check_value(kek: bytes) -> bytes:
    """What the database stores to recognise its KEK (reveals nothing usable about it)."""
    return _subkey(kek, _CHECK_LABEL)


def verify_check_value(kek: bytes, stored: bytes) -> None:
    if not hmac_sm3_verify(kek, _CHECK_LABEL, stored):
        raise KekError(
            "密钥加密密钥不匹配 / wrong key-encryption key: this keystore was created with another KEK; "
            "set ECERT_KEK or ECERT_KEK_FILE to the original key (nothing was changed)"
        )


def wrap(kek: bytes, kid: str, secret: bytes) -> bytes:
    """SM4-GCM encryption of ``secret`` bound to ``kid`` (AAD)."""
    return WRAP_VERSION + sm4.encrypt(_subkey(kek, _WRAP_LABEL)[: sm4.KEY_SIZE], secret, kid.encode("ascii"))


def unwrap(kek: bytes, kid: str, blob: bytes) -> bytes:
    """Inverse of `wrap`; raises `sm4.DecryptionError` if the row was altered or moved to another kid."""
    if blob[:1] != WRAP_VERSION:
        raise sm4.DecryptionError("unknown key-wrapping version")
    return sm4.decrypt(_subkey(kek, _WRAP_LABEL)[: sm4.KEY_SIZE], blob[1:], kid.encode("ascii"))
