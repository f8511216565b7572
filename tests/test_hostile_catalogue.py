"""The hostile-input catalogue (tests/hostile/catalogue.py) through the real HTTP app and through
the library function behind each route: the exact verdict and failing checks, or the exact
4xx and error code; never a 500, and an answer at all within a hang guard (not a benchmark).

``ECERT_HOSTILE_TIMES=file.json`` records each call's wall time (docs/HARDENING.md quotes them).
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys
import time
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient

from ofd.errors import OFDError
from ofd.licence.errors import LicenceError
from signer import ses
from tests import live_server
from tests.hostile import catalogue as cat
from tests.hostile.lab import SIGNED_VALUE, Lab, unpack
from tests.test_api import _json_record

HANG_GUARD_S = 20  # a hang fails one case instead of stalling the suite; the doc reports real times
ROUTES = {"verify": "/v1/verify", "render": "/v1/render", "qr": "/v1/qr/verify", "issue": "/v1/licences"}
_TIMES: dict[str, float] = {}


@contextmanager
def answered_within(seconds: int, what: str):
    def boom(signum, frame):
        raise TimeoutError(f"{what}: no answer within {seconds} s")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    t0 = time.perf_counter()
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        _TIMES[what] = round(time.perf_counter() - t0, 3)


@pytest.fixture(scope="module", autouse=True)
def _write_times():
    yield
    path = os.environ.get("ECERT_HOSTILE_TIMES")
    if path:
        with open(path, "w") as f:
            json.dump(_TIMES, f, indent=1, sort_keys=True)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("hostile_home"))
    yield lab
    lab.close()


@pytest.fixture(scope="module")
def client(lab):
    from api.app import create_app
    from api.settings import load_api_settings

    with TestClient(create_app(load_api_settings(lab.env, sign_workers=0)), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def token(lab):
    from api.auth import TokenStore

    ts = TokenStore(lab.store.settings.database_url)
    yield ts.create("hostile catalogue", ["issue"])[0]
    ts.close()


_INPUTS: dict[str, object] = {}


def hostile(lab: Lab, case: cat.Case):
    if case.id not in _INPUTS:
        _INPUTS[case.id] = case.build(lab)
    return _INPUTS[case.id]


def as_json(record):
    """A record as an issuing system sends it (dates as strings, photo as base64); hostile shapes as they are."""
    return _json_record(record) if isinstance(record, dict) and isinstance(record.get("photo"), bytes) else record


# ------------------------------------------------------------------ checking one answer


def check_report(report: dict, want: cat.Verdict, where: str) -> None:
    failed = {c["name"] for c in report["checks"] if c["status"] == "fail"}
    shown = [(c["name"], c["status"], c["reason_en"]) for c in report["checks"] if c["status"] != "pass"]
    assert (report["verdict"], failed) == (want.verdict, set(want.fails)), (where, shown)
    if want.code:
        reasons = [c["reason_en"] for c in report["checks"] if c["status"] == "fail"]
        assert any(f"({want.code})" in r for r in reasons), (where, reasons)


def field_pairs(errors: list[dict]) -> set[tuple[str, str]]:
    return {(e["field"], e["code"]) for e in errors}


def check_fields(errors: list[dict], want: cat.FieldProblems, case: cat.Case) -> None:
    pairs = field_pairs(errors)
    assert set(want.problems) <= pairs, pairs
    if want.exact:
        assert {f for f, _ in pairs} == set(case.extra["fields"]), sorted(pairs)
    for e in errors:  # every problem is explained in both languages
        assert e["message_zh"] and e["message_en"]


HTTP_CASES = [c for c in cat.CASES if c.extra.get("http", True)]


@pytest.mark.parametrize("case", HTTP_CASES, ids=[c.id for c in HTTP_CASES])
def test_over_http(case: cat.Case, lab, client, token):
    data = hostile(lab, case)
    url = ROUTES[case.route]
    with answered_within(HANG_GUARD_S, f"http:{case.id}"):
        if case.route == "qr":
            r = client.post(url, json={"text": data})
        elif case.route == "issue":
            r = client.post(url, json=as_json(data), headers={"Authorization": f"Bearer {token}"})
        else:
            r = client.post(url, content=data, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code != 500, r.text[:500]
    want = case.expect
    if isinstance(want, cat.Verdict):
        assert r.status_code == 200, r.text[:500]
        check_report(r.json(), want, "http")
    elif isinstance(want, cat.Refused):
        assert (r.status_code, r.json()["error"]) == (want.status, want.error), r.text[:500]
    elif isinstance(want, cat.FieldProblems):
        assert (r.status_code, r.json()["error"]) == (422, "invalid_record"), r.text[:500]
        check_fields(r.json()["errors"], want, case)
    elif isinstance(want, cat.Unrenderable):
        assert (r.status_code, r.json()["error"]) == (422, "unrenderable"), r.text[:500]
    elif isinstance(want, cat.Placeholder):
        assert r.status_code == 200 and r.headers["content-type"] == "image/png", r.text[:300]
        assert r.content.startswith(b"\x89PNG")
    else:
        raise AssertionError(want)


@pytest.mark.parametrize("case", cat.CASES, ids=[c.id for c in cat.CASES])
def test_library(case: cat.Case, lab):
    from ofd.licence.model import validate_record
    from ofd.reader import open_ofd
    from ofd.render import render_page
    from api.routes_portal import RENDER_DPI
    from verifier.ofd_verify import verify_ofd
    from verifier.qr_verify import keyring_from_store, verify_qr
    from verifier.trust import trust_from_store

    data = hostile(lab, case)
    _INPUTS.pop(case.id)  # the HTTP test ran first (file order); large inputs are not kept
    want = case.lib_expect
    with answered_within(HANG_GUARD_S, f"lib:{case.id}"):
        if case.route == "verify":
            got = verify_ofd(data, trust_from_store(lab.store, registry=lab.registry)).to_dict()
        elif case.route == "qr":
            got = verify_qr(data, keyring_from_store(lab.store)).to_dict()
        elif case.route == "issue":
            with pytest.raises(LicenceError) as exc:
                validate_record(data)
            got = exc.value.as_dicts()
        else:
            try:
                doc = open_ofd(data)
                render_page(doc, 0, dpi=RENDER_DPI)
                got = doc.warnings
            except OFDError as exc:
                got = exc
    if isinstance(want, cat.Verdict):
        check_report(got, want, "library")
    elif isinstance(want, cat.FieldProblems):
        check_fields(got, want, case)
    elif isinstance(want, cat.Unrenderable):
        assert isinstance(got, OFDError) and got.code == want.code, got
        assert got.message_en and got.message_zh
    elif isinstance(want, cat.Placeholder):
        assert not isinstance(got, OFDError), got
        assert want.warning is None or any(want.warning in w for w in got), got
    else:
        raise AssertionError(want)


SES_CASES = [c for c in cat.CASES if "ses_code" in c.extra]


@pytest.mark.parametrize("case", SES_CASES, ids=[c.id for c in SES_CASES])
def test_ses_parser_names_the_der_fault(case: cat.Case, lab):
    """The verifier's `signed_value` failure comes from the SES parser's typed error, with the right code."""
    pkg = unpack(hostile(lab, case))
    with pytest.raises(ses.SESError) as exc:
        ses.parse_signed_value(pkg[SIGNED_VALUE])
    assert exc.value.code in case.extra["ses_code"], (exc.value.code, exc.value.message_en)


def test_catalogue_has_at_least_40_classes():
    fams = cat.families()
    assert len(fams) >= 40, sorted(fams)
    assert len({c.id for c in cat.CASES}) == len(cat.CASES)


# ------------------------------------------------------------------ 200 MiB over real HTTP


@pytest.fixture(scope="module")
def server(lab, tmp_path_factory):
    home = tmp_path_factory.mktemp("hostile_server")
    port = live_server.free_port()
    proc = live_server.start([sys.executable, "-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port", str(port)],
                             home, {**lab.env, "ECERT_SIGN_WORKERS": "0"})
    try:
        live_server.wait_ready(proc, f"http://127.0.0.1:{port}", home)
        yield {"port": port, "pid": proc.pid}
    finally:
        live_server.stop(proc)


def peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def send_until_answered(port: int, head: bytes, chunks, limit_s: float = HANG_GUARD_S) -> tuple[bytes, int]:
    """Send ``head`` then ``chunks`` until the server answers; (answer, body bytes sent)."""
    sent = 0
    deadline = time.monotonic() + limit_s
    with socket.create_connection(("127.0.0.1", port), timeout=limit_s) as s:
        s.sendall(head)
        for chunk in chunks:
            if select.select([s], [], [], 0)[0] or time.monotonic() > deadline:
                break
            try:
                s.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            part = s.recv(65536)
            if not part:
                break
            answer += part
    return answer, sent


def _answer(raw: bytes) -> tuple[int, dict]:
    """(status, JSON body) of a raw HTTP/1.1 answer with a Content-Length (how our errors are sent)."""
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_200_mib_upload_declared_is_refused_before_reading(server):
    head = (b"POST /v1/verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: %d\r\n\r\n" % (200 * 1024 * 1024))
    answer, sent = send_until_answered(server["port"], head, iter([bytes(65536)] * 3200))
    status, body = _answer(answer)
    assert (status, body["error"]) == (413, "too_large")
    assert sent < 20 * 1024 * 1024  # answered on the header, long before the body's end


def test_200_mib_upload_streamed_is_cut_at_the_limit_without_buffering(server):
    before = peak_rss_mib(server["pid"])
    head = (b"POST /v1/verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n" % (1024 * 1024) + bytes(1024 * 1024) + b"\r\n"
    answer, sent = send_until_answered(server["port"], head, iter([chunk] * 200))
    status, body = _answer(answer)
    assert (status, body["error"]) == (413, "too_large")
    assert sent < 200 * len(chunk)  # the server answered before the client finished
    # Bounded memory: the 20 MiB limit, not the 200 MiB body, decides what the server holds.
    assert peak_rss_mib(server["pid"]) - before < 120


def test_hardening_doc_shows_the_current_catalogue():
    doc = (live_server.ROOT / "docs" / "HARDENING.md").read_text(encoding="utf-8")
    assert cat.markdown_table() in doc


# ------------------------------------------------------------------ the fuzz harness itself


@pytest.mark.parametrize("target", ["ofd_reader", "ses_der", "qr_payload", "record_validator"])
def test_fuzz_target_takes_its_seeds_and_damaged_ones(target, lab):
    """`make fuzz` must not rot: each target runs its generated seeds, and every seed with one
    byte flipped at 40 places, without an escaping exception (as under atheris, uninstrumented)."""
    from tests.fuzz.seeds import build
    from tests.fuzz.targets import TARGETS

    run = TARGETS[target]
    seeds = build(target, lab)
    assert seeds
    with answered_within(HANG_GUARD_S, f"fuzz:{target}"):
        for seed in seeds[:4]:
            run(seed)
            for i in range(1, len(seed), max(1, len(seed) // 40)):
                run(seed[:i] + bytes([seed[i] ^ 0xFF]) + seed[i + 1:])
