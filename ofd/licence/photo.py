"""The holder's photo: a real, bounded JPEG or PNG.

The bytes come from an outside system and end up embedded in a signed document, so
they are decoded with Pillow (magic bytes prove nothing), restricted to the JPEG and
PNG decoders, and the declared pixel size is checked *before* any pixel is decoded,
so a small file declaring a huge image (decompression bomb) is refused from its
header alone. CMYK and other exotic modes are refused because OFD viewers render
them inconsistently (inverted colours are common).
"""

from __future__ import annotations

import functools
import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from .errors import single_error

MAX_PHOTO_BYTES = 512 * 1024
MIN_PX = (100, 125)  # width, height
MAX_PX = (1200, 1600)
FORMATS = ("JPEG", "PNG")
MODES = frozenset({"1", "L", "LA", "P", "RGB", "RGBA"})


@dataclass(frozen=True)
class PhotoInfo:
    format: str  # "JPEG" | "PNG"
    size: tuple[int, int]  # (width, height) in pixels
    mode: str


def inspect_photo(data: bytes, *, field: str = "photo") -> PhotoInfo:
    """Decode ``data`` fully and check format, byte size and pixel bounds."""

    fail = functools.partial(single_error, field)

    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise fail("type", "应为图像字节", "must be image bytes")
    data = bytes(data)
    if not data:
        raise fail("empty", "不能为空", "must not be empty")
    if len(data) > MAX_PHOTO_BYTES:
        raise fail("too_large", f"文件过大（{len(data)} 字节，上限 {MAX_PHOTO_BYTES} 字节）", f"file too large ({len(data)} bytes, limit {MAX_PHOTO_BYTES})")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data), formats=list(FORMATS))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            # Pillow's own guard fired on the header: a decompression bomb.
            raise fail("pixel_size", "声明的像素尺寸过大", "declared pixel size is far too large") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            raise fail("format", "不是有效的 JPEG 或 PNG 图像", "is not a valid JPEG or PNG image") from None
        with img:
            w, h = img.size
            if not (MIN_PX[0] <= w <= MAX_PX[0] and MIN_PX[1] <= h <= MAX_PX[1]):
                raise fail(
                    "pixel_size",
                    f"像素尺寸 {w}×{h} 超出范围（宽 {MIN_PX[0]}-{MAX_PX[0]}，高 {MIN_PX[1]}-{MAX_PX[1]}）",
                    f"pixel size {w}x{h} out of bounds (width {MIN_PX[0]}-{MAX_PX[0]}, height {MIN_PX[1]}-{MAX_PX[1]})",
                )
            if img.mode not in MODES:
                raise fail("color_mode", f"色彩模式 {img.mode} 不受支持，请使用 RGB 或灰度", f"colour mode {img.mode} is not supported; use RGB or greyscale")
            if getattr(img, "n_frames", 1) != 1:
                raise fail("animated", "不能是动画图像", "must not be animated")
            fmt = img.format
            if fmt == "JPEG":
                # Decode at 1/8 scale (DCT scaling): every entropy-coded byte is still read, so
                # truncation and corruption are still caught, at a fraction of the IDCT cost.
                img.draft(img.mode, (max(1, w // 8), max(1, h // 8)))
            try:
                img.load()  # bounded by the size check above
            except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombWarning):
                raise fail("corrupt", "图像数据损坏或不完整", "image data is corrupt or truncated") from None
    return PhotoInfo(format=fmt, size=(w, h), mode=img.mode)
