"""Seed corpora, generated at start from a licence sealed with throw-away development keys
(plus the vendor samples in /work/shared/samples when present): nothing binary is committed."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from tests.conftest import SAMPLES
from tests.hostile.lab import SEAL, SIGNED_VALUE, Lab, unpack
from tests.test_api import _json_record

from .targets import pack_entries

_BINARY = (".jpg", ".png", ".esl", ".dat", ".otf", ".ttf", ".jb2")


def _json(rec: dict) -> bytes:
    return json.dumps(_json_record(rec), ensure_ascii=False).encode()


def _small_photo() -> bytes:
    from ofd.licence.fake import portrait

    return portrait(seed=1, fmt="PNG", size=(100, 125))


def build(target: str, lab: Lab) -> list[bytes]:
    """Seed inputs for ``target`` (already carrying the target's mode byte)."""
    data = lab.licence(1)
    pkg = unpack(data)
    if target == "ofd_reader":
        small = {n: (b"x" if n.endswith(_BINARY) else v) for n, v in pkg.files.items()}
        seeds = [b"\x00" + data, b"\x01" + pack_entries(small)]
        if SAMPLES.is_dir():
            for f in sorted(SAMPLES.glob("*.ofd")):
                raw = f.read_bytes()
                if len(raw) < 200_000:
                    seeds.append(b"\x00" + raw)
                    sample = unpack(raw)
                    seeds.append(b"\x01" + pack_entries({n: (b"x" if n.endswith(_BINARY) else v)
                                                         for n, v in sample.files.items()}))
        return seeds
    if target == "ses_der":
        seeds = [b"\x00" + pkg[SIGNED_VALUE], b"\x01" + pkg[SEAL]]
        if SAMPLES.is_dir():
            for f in sorted(SAMPLES.glob("*.ofd")):
                sample = unpack(f.read_bytes())
                seeds += [b"\x00" + v for n, v in sorted(sample.files.items()) if n.endswith("SignedValue.dat")][:2]
                seeds += [b"\x01" + v for n, v in sorted(sample.files.items()) if n.endswith(".esl")][:1]
        return seeds
    if target == "qr_payload":
        from signer.issue import portal_url
        from signer.qr_payload import from_text, make_qr_text
        from ofd.licence.model import validate_record

        seeds = []
        for seq in (1, 2, 3):
            text = make_qr_text(validate_record(lab.record(seq)), lab.own, portal=portal_url())
            body, _ = from_text(text)
            seeds += [b"\x00" + text.encode(), b"\x01" + body]
        return seeds
    if target == "record_validator":
        from ofd.licence.model import validate_record

        recs = [lab.record(seq, photo=_small_photo()) for seq in (1, 2)]
        md = validate_record(recs[0]).metadata()
        return [b"\x00" + _json(r) for r in recs] + [b"\x01" + json.dumps(md, ensure_ascii=False).encode()]
    raise KeyError(target)


def write_corpus(target: str, where: Path | None = None) -> Path:
    """A fresh corpus directory for ``target`` holding its seeds; libFuzzer adds to it."""
    where = Path(where or tempfile.mkdtemp(prefix=f"ecert_fuzz_{target}_"))
    where.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="ecert_fuzz_home_"))
    lab = Lab(home)
    try:
        for i, seed in enumerate(build(target, lab)):
            (where / f"seed_{i:03d}").write_bytes(seed)
    finally:
        lab.close()
        shutil.rmtree(home, ignore_errors=True)
    return where
