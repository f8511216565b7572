"""`ecert render`: one OFD page to PNG or SVG, to see what a document (or a seal on it) looks like."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer()

EXIT_USAGE = 2
MAX_INPUT_BYTES = 256 * 1024 * 1024  # the reader's own limits apply inside; this only bounds the read


class Format(str, Enum):
    png = "png"
    svg = "svg"


def _fail(en: str, zh: str) -> typer.Exit:
    typer.echo(f"error: {en}\n错误：{zh}", err=True)
    return typer.Exit(EXIT_USAGE)


@app.command()
def render(
    file: Path = typer.Argument(..., help="The .ofd file to render."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output file (default: FILE with .png/.svg)."),
    page: int = typer.Option(1, "--page", help="Page number, starting at 1."),
    dpi: float = typer.Option(150.0, "--dpi", help="Resolution of the PNG (dots per inch)."),
    fmt: Optional[Format] = typer.Option(None, "--format", help="png or svg (default: from the output name, else png)."),
) -> None:
    """Render one page of an OFD document (text, images, paths and the seals) to PNG or SVG."""
    from ofd.errors import OFDError
    from ofd.reader import open_ofd
    from ofd.render import render_page, render_svg

    if fmt is None:
        fmt = Format.svg if output is not None and output.suffix.lower() == ".svg" else Format.png
    try:
        if file.stat().st_size > MAX_INPUT_BYTES:
            raise _fail(f"{file} is larger than {MAX_INPUT_BYTES // 2**20} MiB.", f"{file} 超过 {MAX_INPUT_BYTES // 2**20} MiB。")
        data = file.read_bytes()
    except OSError as exc:
        raise _fail(f"cannot read {file}: {exc.strerror or exc}.", f"无法读取 {file}：{exc.strerror or exc}。") from None
    target = output or file.with_suffix(f".{fmt.value}")
    try:
        doc = open_ofd(data)
        if fmt is Format.svg:
            content: bytes = render_svg(doc, page - 1).encode("utf-8")
        else:
            import io

            buf = io.BytesIO()
            render_page(doc, page - 1, dpi=dpi).save(buf, "PNG", compress_level=3)
            content = buf.getvalue()
    except OFDError as exc:
        raise _fail(f"{file}: {exc.message_en}", f"{file}：{exc.message_zh}") from None
    try:
        target.write_bytes(content)
    except OSError as exc:
        raise _fail(f"cannot write {target}: {exc.strerror or exc}.", f"无法写入 {target}：{exc.strerror or exc}。") from None
    typer.echo(f"{target} (page {page}, {fmt.value}{'' if fmt is Format.svg else f', {dpi:g} dpi'})")
