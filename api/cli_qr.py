"""`ecert qr verify`: check a licence QR offline, from its text or from a photo of it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from .cli_docs import EXIT_USAGE, _parse_time, console, print_report

app = typer.Typer(help="Signed licence QR codes (二维码).", no_args_is_help=True)



@app.callback()
def main() -> None:
    """Signed licence QR codes: verify offline (`ecert qr verify`)."""


MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_IMAGE_PIXELS = 40_000_000


def _fail(en: str, zh: str) -> typer.Exit:
    console.print(f"[red]{zh} / {en}[/red]")
    return typer.Exit(EXIT_USAGE)


def read_qr_image(path: Path) -> str:
    """The text of the QR code in a photo or scan (PNG/JPEG/...); typer.Exit(2) when there is none."""
    import zxingcpp
    from PIL import Image, UnidentifiedImageError

    try:
        if path.stat().st_size > MAX_IMAGE_BYTES:
            raise _fail(f"image larger than {MAX_IMAGE_BYTES // 2**20} MiB: {path}", f"图像文件过大：{path}")
        with Image.open(path) as img:
            if img.width * img.height > MAX_IMAGE_PIXELS:
                raise _fail(f"image has too many pixels ({img.width}x{img.height})", f"图像像素过多（{img.width}x{img.height}）")
            found = zxingcpp.read_barcodes(img.convert("L"), formats=zxingcpp.BarcodeFormat.QRCode)
    except OSError as exc:
        raise _fail(f"cannot read image {path}: {getattr(exc, 'strerror', None) or exc}", f"无法读取图像 {path}") from None
    except (UnidentifiedImageError, Image.DecompressionBombError, ValueError) as exc:
        raise _fail(f"not a readable image: {path} ({type(exc).__name__})", f"不是可识别的图像：{path}") from None
    texts = [b.text for b in found if b.valid and b.text]
    if not texts:
        raise _fail(f"no QR code found in {path}", f"图像中未找到二维码：{path}")
    return next((t for t in texts if "#" in t or t.startswith("EC")), texts[0])


def _keyring():
    """Every signing key of the local keystore (retired and revoked ones too), or an empty keyring."""
    from keys.config import load_settings
    from verifier.qr_verify import Keyring, keyring_from_store

    settings = load_settings()
    if settings.is_sqlite and not (settings.home / "keystore.db").exists():
        return Keyring(), "no keystore here: every key is unknown (give a trust list)"
    try:
        from keys.store import KeyStore

        with KeyStore(settings) as store:
            return keyring_from_store(store), None
    except Exception as exc:  # an unusable keystore is reported, the QR is still decoded
        return Keyring(), f"keystore not used: {exc}"


@app.command()
def verify(
    text: Optional[str] = typer.Argument(None, help="The QR text: the printed URL or the bare EC1: payload."),
    image: Optional[Path] = typer.Option(None, "--image", help="Read the QR from a photo or scan instead."),
    as_json: bool = typer.Option(False, "--json", help="Print the machine-readable report."),
    at: Optional[str] = typer.Option(None, "--at", help="Verify as of this time (ISO 8601)."),
):
    """Verify a licence QR offline. Exit 0 valid, 1 invalid, 3 indeterminate, 2 usage/unreadable."""
    from verifier.qr_verify import verify_qr

    if (text is None) == (image is None):
        raise _fail("give either TEXT or --image (one of them)", "请提供二维码内容或 --image 图像（二选一）")
    if image is not None:
        text = read_qr_image(image)
    keyring, note = _keyring()
    report = verify_qr(text, keyring, at=_parse_time(at) if at else None)
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict(), ensure_ascii=False, indent=2) + "\n")
    else:
        if note:
            console.print(f"[dim]{note}[/dim]")
        print_report(report, "QR")
        for k, v in (report.licence or {}).items():
            console.print(f"  {k}: {v}")
    raise typer.Exit(report.exit_code())
