"""The verification portal in a real headless Chromium (Debian ``chromium``, driven by Playwright)
against a real uvicorn: upload our licence -> 有效, a tampered one -> 无效 naming the failed
check, a QR text pasted or landed on ``/v#EC1:...`` -> its verdict; data shown as text, never
markup; a strict CSP with no violation. ``ECERT_PORTAL_SCREENSHOTS=docs`` rewrites the
README's screenshots (docs/portal-valid.png, docs/portal-invalid.png)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest
from PIL import Image

from .conftest import make_record
from . import live_server
from .live_server import free_port as _free_port, stop as _stop, wait_ready as _wait_ready

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'

playwright_sync = pytest.importorskip("playwright.sync_api", reason="pip install playwright (test extra)")
if not Path(CHROMIUM).exists():
    pytest.skip("Debian chromium is not installed (scripts/sysdeps.sh)", allow_module_level=True)


def _start(cmd: list[str], home: Path, port: int, extra_env: dict | None = None) -> subprocess.Popen:
    env = {"ECERT_HOME": str(home), "ECERT_SIGN_WORKERS": "0", "PORT": str(port), **(extra_env or {})}
    return live_server.start(cmd, home, env, unset=("PROMETHEUS_MULTIPROC_DIR",))


def _tamper_photo(data: bytes) -> bytes:
    """Flip one byte of the (signed) photo and re-zip: what a forger editing the picture does."""
    src = zipfile.ZipFile(io.BytesIO(data))
    photos = [n for n in src.namelist() if "Res" in n and n.lower().endswith((".jpg", ".jpeg"))]
    assert photos, src.namelist()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for n in src.namelist():
            body = src.read(n)
            if n == photos[0]:
                body = body[:200] + bytes([body[200] ^ 0x01]) + body[201:]
            dst.writestr(n, body)
    return out.getvalue()


def _issue_in(home: Path, seq: int, portal: str) -> tuple[bytes, dict, str]:
    """A new keystore in ``home``, one licence issued through its registry (as the API issues),
    and the signed QR text of that licence pointing at ``portal``."""
    from api.signing_pool import WorkContext
    from keys.config import load_settings
    from keys.store import KeyStore
    from ofd.licence.model import validate_record
    from signer.issue import load_identity
    from signer.qr_payload import make_qr_text

    settings = load_settings({"ECERT_HOME": str(home)})
    with KeyStore(settings) as store:
        issuer = store.init_dev().issuer
    rec = make_record(issuer.code, issuer.name, seq=seq)
    ctx = WorkContext(settings)
    try:
        issued = ctx.issue(dict(rec))
        assert "data" in issued, issued
        qr = make_qr_text(validate_record(dict(rec)), load_identity(ctx.store, issuer.code), portal=portal)
    finally:
        ctx.close()
    return issued["data"], rec, qr


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("portal_home")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    data, rec, qr = _issue_in(home, 7, base)
    foreign, _, _ = _issue_in(tmp_path_factory.mktemp("other_home"), 8, base)  # a root this server does not trust
    files = home / "files"
    files.mkdir()
    (files / "licence.ofd").write_bytes(data)
    (files / "tampered.ofd").write_bytes(_tamper_photo(data))
    (files / "foreign.ofd").write_bytes(foreign)
    proc = _start([sys.executable, "-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port", str(port),
                   "--log-level", "warning"], home, port)
    try:
        _wait_ready(proc, base, home)
        yield {"base": base, "files": files, "qr": qr, "name": rec["name"]}
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    """A fresh context per test; console errors (CSP violations among them) and dialogs recorded."""
    context = browser.new_context(viewport={"width": 1180, "height": 900}, device_scale_factor=1, locale="zh-CN")
    pg = context.new_page()
    pg.errors, pg.dialogs = [], []
    pg.on("console", lambda m: pg.errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
    yield pg
    context.close()


def _open(page, url: str) -> None:
    page.goto("about:blank")  # a fresh load, even when only the #fragment differs
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']")


def _verdict(page) -> tuple[str, str]:
    page.wait_for_selector("body[data-state='done']", timeout=20_000)
    box = page.locator("#verdict")
    return box.get_attribute("data-verdict"), page.locator("#verdict-word").inner_text().strip()


def _wait_page_image(page) -> int:
    """The rendered page picture's width once loaded (polled: the page's CSP forbids Playwright's eval)."""
    for _ in range(200):
        width = page.evaluate("document.getElementById('page-image').complete && "
                              "document.getElementById('page-image').naturalWidth")
        if width:
            return width
        page.wait_for_timeout(100)
    pytest.fail("the rendered page picture never loaded")


def _screenshot(page, name: str) -> None:
    if os.environ.get("ECERT_PORTAL_SCREENSHOTS") == "docs":
        page.screenshot(path=str(ROOT / "docs" / name), full_page=True)


def test_portal_pages_send_a_strict_csp_and_no_inline_script(server):
    import re

    for path in ("/", "/v", "/portal/portal.js", "/portal/portal.css"):
        r = httpx.get(server["base"] + path)
        assert r.status_code == 200, path
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp and "unsafe" not in csp
        assert r.headers["x-content-type-options"] == "nosniff"
    html = httpx.get(server["base"] + "/").text
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts and all(" src=" in s for s in scripts), scripts  # every script is a file, none inline
    assert " on" not in re.sub(r"<(script|link)\b[^>]*>", "", html).lower().replace(" one", "")  # no onclick=...
    refs = re.findall(r'\b(?:src|href)="([^"]*)"', html)
    assert refs and all(u.startswith("/portal/") for u in refs), refs  # nothing from a CDN or another host
    for bad in ("/portal/index.html", "/portal/..%2fapp.py", "/portal/%2e%2e%2fapp.py", "/portal/nope.js"):
        assert httpx.get(server["base"] + bad).status_code == 404, bad


def test_upload_our_licence_says_valid_with_every_check_and_the_page(server, page):
    _open(page, server["base"] + "/")
    assert page.locator("#result").is_hidden()
    page.set_input_files("#file", str(server["files"] / "licence.ofd"))
    verdict, word = _verdict(page)
    assert (verdict, word) == ("valid", "有效")
    assert page.locator("[data-field='name']").inner_text() == server["name"]
    assert "*" in page.locator("[data-field='id_number']").inner_text()  # masked, as the report gives it
    rows = page.locator("#checks tr")
    assert rows.count() >= 10
    statuses = rows.evaluate_all("rs => rs.map(r => [r.dataset.check, r.dataset.status, r.cells[0].textContent])")
    assert not [s for s in statuses if s[1] == "fail"]
    assert ["references", "pass", "✓"] in statuses and ["signature", "pass", "✓"] in statuses
    width = _wait_page_image(page)
    assert 300 < width < 2000  # ~110 dpi of a card-sized or A4 page
    assert page.locator("#page-figure").is_visible() and page.locator("#untrusted").is_hidden()
    assert page.errors == [] and page.dialogs == []
    _screenshot(page, "portal-valid.png")


def test_tampered_licence_is_invalid_and_names_the_failed_check(server, page):
    _open(page, server["base"] + "/")
    page.set_input_files("#file", str(server["files"] / "tampered.ofd"))
    verdict, word = _verdict(page)
    assert (verdict, word) == ("invalid", "无效")
    failed = page.locator("#checks tr[data-status='fail']").evaluate_all("rs => rs.map(r => r.dataset.check)")
    assert "references" in failed
    row = page.locator("#checks tr[data-check='references']")
    assert row.locator(".c-mark").inner_text() == "✗"
    assert "文件完整性" in page.locator("#failures").inner_text()  # named up front, in words
    assert page.locator("#failures li").evaluate_all("ls => ls.map(l => l.dataset.check)") == failed  # fails only
    assert page.locator("#untrusted").is_visible()  # the data shown came from a forged file
    _wait_page_image(page)
    assert page.errors == []
    _screenshot(page, "portal-invalid.png")


def test_licence_from_an_untrusted_root_cannot_be_confirmed(server, page):
    _open(page, server["base"] + "/")
    page.set_input_files("#file", str(server["files"] / "foreign.ofd"))
    assert _verdict(page) == ("indeterminate", "无法确认")
    assert page.locator("#failures-title").inner_text() == "需要注意："
    named = page.locator("#failures li").evaluate_all("ls => ls.map(l => l.dataset.check)")
    assert "certificate_chain" in named and "证书链" in page.locator("#failures").inner_text()
    assert page.locator("#checks tr[data-check='certificate_chain'] .c-mark").inner_text() == "!"
    assert page.errors == []


def test_english_toggle_redraws_the_answer_and_is_remembered(server, page):
    _open(page, server["base"] + "/")
    page.set_input_files("#file", str(server["files"] / "tampered.ofd"))
    _verdict(page)
    page.click("#lang")
    assert page.locator("#verdict-word").inner_text() == "INVALID"
    assert "File integrity" in page.locator("#failures").inner_text()
    assert page.evaluate("document.documentElement.lang") == "en"
    _open(page, server["base"] + "/")
    assert page.locator("h1").inner_text().startswith("Special Operation Certificate")
    page.click("#lang")
    assert page.locator("h1").inner_text().startswith("特种作业操作证")


def test_pasted_qr_text_and_the_qr_landing_page(server, page):
    _open(page, server["base"] + "/")
    page.fill("#qr-text", server["qr"])
    page.click("#qr-submit")
    assert _verdict(page) == ("valid", "有效")
    assert page.locator("[data-field='name']").inner_text() == server["name"]
    assert page.locator("#page-figure").is_hidden()  # a QR carries no page to draw

    payload = server["qr"].split("#", 1)[1]
    assert payload.startswith("EC1:")
    _open(page, server["base"] + "/v#" + payload)  # what a phone opens after scanning
    assert _verdict(page) == ("valid", "有效")

    forged = payload[:-6] + ("1" if payload[-6] != "1" else "2") + payload[-5:]
    _open(page, server["base"] + "/v#" + forged)
    verdict, word = _verdict(page)
    assert (verdict, word) == ("invalid", "无效")
    assert page.locator("#checks tr[data-status='fail']").count() >= 1
    assert page.errors == []


def test_markup_in_any_field_is_shown_as_text_never_run(server, page):
    """A forged document's fields reach the page as data: a verify-shaped answer full of markup."""
    crafted = {
        "verdict": "invalid", "verdict_zh": "无效",
        "checks": [{"name": XSS, "status": "fail", "reason": XSS, "reason_zh": XSS, "reason_en": XSS, "signature": XSS},
                   {"name": "references", "status": XSS, "reason": "x", "reason_zh": XSS, "reason_en": XSS}],
        "signatures": [{"id": XSS, "type": XSS, "signer": XSS, "signed_at": XSS, "format": XSS}],
        "licence": {"name": XSS, "item": XSS, "issuer_name": XSS},
        "verified_at": XSS, "document": {"size": 1, "sm3": XSS},
    }
    page.route("**/v1/verify", lambda route: route.fulfill(status=200, content_type="application/json",
                                                            body=json.dumps(crafted)))
    _open(page, server["base"] + "/")
    page.set_input_files("#file", {"name": "forged.ofd", "mimeType": "application/ofd", "buffer": b"PK\x05\x06" + bytes(18)})
    assert _verdict(page) == ("invalid", "无效")
    assert page.locator("[data-field='name']").inner_text() == XSS
    assert XSS in page.locator("#checks").inner_text() and XSS in page.locator("#signatures").inner_text()
    assert page.locator("#result img").count() == 1  # only the page picture's own <img>
    assert page.locator("#result script").count() == 0
    page.wait_for_timeout(200)  # let an onerror fire, were there an <img src=x>
    assert page.evaluate("window.__xss") is None and page.dialogs == []

    # the real server, a QR text carrying markup: an invalid payload, still only text
    page.unroute("**/v1/verify")
    _open(page, server["base"] + "/v#EC1:" + XSS.replace('"', ""))
    assert _verdict(page)[0] == "invalid"
    assert page.evaluate("window.__xss") is None and page.dialogs == []
    assert page.locator("#result img").count() == 1


def test_render_endpoint_png_and_clear_errors(server):
    base = server["base"]
    data = (server["files"] / "licence.ofd").read_bytes()
    r = httpx.post(base + "/v1/render", files={"file": ("l.ofd", data, "application/ofd")}, timeout=30)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    img = Image.open(io.BytesIO(r.content))
    assert img.format == "PNG" and 300 < img.width < 2000
    r = httpx.post(base + "/v1/render", content=b"not an ofd", headers={"content-type": "application/ofd"})
    assert r.status_code == 422 and r.json()["error"] == "unrenderable" and r.json()["message_zh"]
    r = httpx.post(base + "/v1/render", content=b"", headers={"content-type": "application/ofd"})
    assert r.status_code == 422 and r.json()["error"] == "no_document"


def test_new_user_path_ecert_serve_then_upload_examples_output(tmp_path, browser):
    """make run -> open / -> upload a licence issued from examples/ -> 有效, with the real commands."""
    ecert = shutil.which("ecert", path=str(Path(sys.executable).parent))
    if ecert is None:
        pytest.skip("the ecert command is not installed in this environment")
    home = tmp_path / "home"
    home.mkdir()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _start([ecert, "serve"], home, port)  # PORT from the environment, keys bootstrapped on first run
    try:
        _wait_ready(proc, base, home)
        records = tmp_path / "one.jsonl"
        records.write_text((ROOT / "examples" / "records.jsonl").read_text(encoding="utf-8").splitlines()[0] + "\n",
                           encoding="utf-8")
        env = {**os.environ, "ECERT_HOME": str(home), "PYTHONPATH": str(ROOT)}
        out = subprocess.run([ecert, "issue", str(records), "-o", str(tmp_path / "out")], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        issued = sorted((tmp_path / "out").glob("*.ofd"))
        assert len(issued) == 1
        context = browser.new_context()
        try:
            pg = context.new_page()
            _open(pg, base + "/")
            pg.set_input_files("#file", str(issued[0]))
            assert _verdict(pg) == ("valid", "有效")
        finally:
            context.close()
    finally:
        _stop(proc)
