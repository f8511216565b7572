"""The fuzz targets: bytes in, only the parser's typed error may come out.

Each target's first byte picks a mode, so that one corpus reaches both the raw format
and the layer behind its checksums (a mutated ZIP mostly fails its CRC; the entry mode
re-zips mutated entries honestly so the XML and structure layers are reached too).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from ofd.licence.errors import LicenceError
from ofd.licence.model import Licence, validate_record
from signer import ses
from signer.qr_payload import QRPayloadError, decode_body, from_text
from verifier.qr_verify import Keyring, verify_qr
from tests.hostile.zipcraft import exercise, stored_zip

ENTRY_SEP, NAME_SEP = b"\x00\x00\x01", b"\x00"
_EMPTY_KEYRING = Keyring()


def pack_entries(files: dict[str, bytes]) -> bytes:
    """The entry mode's encoding of a package (what `ofd_reader` unpacks after its mode byte)."""
    return ENTRY_SEP.join(name.encode() + NAME_SEP + data for name, data in files.items())


def ofd_reader(data: bytes) -> None:
    """Mode 0: the bytes as an OFD file. Mode 1: entries, re-zipped honestly, then opened."""
    if not data:
        return
    body = data[1:]
    if data[0] & 1:
        files = {}
        for chunk in body.split(ENTRY_SEP):
            name, _, content = chunk.partition(NAME_SEP)
            files[name.decode("utf-8", "replace")] = content
        body = stored_zip(files)
    exercise(body)  # only OFDError is caught inside


def ses_der(data: bytes) -> None:
    """SignedValue.dat (mode 0) or Seal.esl (mode 1) bytes; only SESError may escape."""
    if not data:
        return
    try:
        if data[0] & 1:
            ses.parse_seal(data[1:])
        else:
            ses.parse_signed_value(data[1:])
    except ses.SESError:
        pass


def qr_payload(data: bytes) -> None:
    """Mode 0: QR text through the payload reader and the offline QR verifier. Mode 1: a raw CBOR body.
    Only QRPayloadError may escape the reader; the verifier never raises and calls a text the
    reader refuses ``invalid``."""
    if not data:
        return
    if data[0] & 1:
        try:
            decode_body(data[1:]).to_dict()
        except QRPayloadError:
            pass
        return
    text = data[1:].decode("utf-8", "replace")
    try:
        decode_body(from_text(text)[0]).to_dict()
        readable = True
    except QRPayloadError:
        readable = False
    report = verify_qr(text, _EMPTY_KEYRING)  # no key known: decoded text is indeterminate at best
    assert report.verdict == ("indeterminate" if readable else "invalid"), report.to_dict()


def record_validator(data: bytes) -> None:
    """Mode 0: a JSON record into `validate_record`. Mode 1: JSON metadata into `Licence.from_metadata`
    (how the verifier reads a licence back). Only LicenceError may escape."""
    if not data:
        return
    try:
        value = json.loads(data[1:])
    except (ValueError, RecursionError):
        return
    try:
        if data[0] & 1:
            if isinstance(value, dict):
                Licence.from_metadata({str(k): v for k, v in value.items()}, None)
        else:
            validate_record(value)
    except LicenceError:
        pass


TARGETS: dict[str, Callable[[bytes], None]] = {
    "ofd_reader": ofd_reader,
    "ses_der": ses_der,
    "qr_payload": qr_payload,
    "record_validator": record_validator,
}
