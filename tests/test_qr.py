"""QR symbol for the licence face: encoded by zxing-cpp, drawn as PNG or path, decoded back by zxing-cpp."""

from __future__ import annotations

import io
import random
import re

import numpy as np
import pytest
import zxingcpp
from PIL import Image, ImageDraw

from ofd.qr import EC_LEVELS, QUIET_ZONE, QRError, qr_matrix, qr_path_data, qr_png

# A portal URL with a base45-like payload in the fragment: the shape the signer will hand over.
PAYLOAD = "https://ecert.example.gov.cn/v#ECERT1:" + "6BFTJ4Q%1SAB4L*:5H/V2$U2YH0+47K" * 7


def _decode(gray: np.ndarray, m=None) -> str:
    found = zxingcpp.read_barcodes(gray, formats=zxingcpp.BarcodeFormat.QRCode)
    assert len(found) == 1, f"expected one QR code, found {len(found)}"
    if m is not None:  # the reader sees the version and level we report
        assert (found[0].extra["Version"], found[0].ec_level) == (str(m.version), m.ec_level)
    return found[0].text


def _raster_path(data: str, size_mm: float, dpi: int = 200) -> np.ndarray:
    """Fill the M/L/C polygons of AbbreviatedData (mm) on a white canvas, anti-aliasing off."""
    px = dpi / 25.4
    n = round(size_mm * px)
    img = Image.new("L", (n, n), 255)
    draw = ImageDraw.Draw(img)
    for sub in re.findall(r"M[^M]*", data):
        nums = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", sub)]
        pts = [(nums[i] * px, nums[i + 1] * px) for i in range(0, len(nums), 2)]
        draw.polygon(pts, fill=0)
    return np.asarray(img)


def test_matrix_version_and_size():
    m = qr_matrix(PAYLOAD, "M")
    assert m.size == 17 + 4 * m.version
    assert m.version <= 10  # ARCHITECTURE: the signed payload must fit version 10 at level M
    assert m.ec_level == "M"
    # finder pattern in the top-left corner: 7x7 dark ring around a light ring around a 3x3 core
    rows = m.rows()
    assert rows[0][:7] == "#######" and rows[1][:7] == "#.....#" and rows[3][:7] == "#.###.#"


def _zxing_auto(text: str, ec: str) -> np.ndarray:
    bc = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode, ec_level=ec)
    return np.asarray(bc.to_image(scale=1, add_quiet_zones=False)) < 128


@pytest.mark.parametrize("ec", EC_LEVELS)
def test_mask_choice_is_identical_to_zxing_cpp_own_choice(ec):
    # we pick the mask in numpy; zxing-cpp's (libzint's) full evaluation is the oracle
    rng = random.Random(f"qr-{ec}")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789$%*+-./: abcxyz中文证"
    masks = set()
    for length in (1, 7, 25, 60, 110, 180, 255, 300):
        for _ in range(3):
            text = "".join(rng.choice(alphabet) for _ in range(length))
            m = qr_matrix(text, ec)
            assert (m.dark == _zxing_auto(text, ec)).all(), (ec, length, text)
            masks.add(m.mask)
    assert len(masks) >= 4  # the selection really varies


def test_large_symbols_fall_back_to_zxing_selection():
    text = "x" * 1200  # version > 11: wider than the 64-bit fast path
    m = qr_matrix(text, "L")
    assert m.size > 64 and (m.dark == _zxing_auto(text, "L")).all() and 0 <= m.mask < 8


def test_short_text_gives_small_version():
    assert qr_matrix("T11010519491231002X").version == 1
    assert qr_matrix("x" * 100, "H").version > qr_matrix("x" * 100, "L").version


def test_png_decodes_to_exact_text_and_is_crisp():
    m = qr_matrix(PAYLOAD)
    png = qr_png(m, scale=4)
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG" and img.mode == "1"
    assert img.size == ((m.size + 2 * QUIET_ZONE) * 4,) * 2
    assert _decode(np.asarray(img.convert("L")), m) == PAYLOAD
    # the pixels are exactly the module matrix (no smoothing in the file itself)
    small = np.asarray(img.convert("L"))[::4, ::4] < 128
    assert (small[QUIET_ZONE:-QUIET_ZONE, QUIET_ZONE:-QUIET_ZONE] == m.dark).all()
    assert not small[:QUIET_ZONE].any() and not small[:, -QUIET_ZONE:].any()


def test_png_survives_bilinear_scaling_like_a_viewer():
    # a viewer shows the 30 mm box at 200 dpi (236 px) with smoothing
    m = qr_matrix(PAYLOAD)
    img = Image.open(io.BytesIO(qr_png(m))).convert("L").resize((236, 236), Image.BILINEAR)
    assert _decode(np.asarray(img)) == PAYLOAD


def test_path_data_rasterises_to_the_same_code():
    m = qr_matrix(PAYLOAD)
    module = 30 / m.size_with_quiet_zone
    data = qr_path_data(m, module)
    assert data.startswith("M ") and data.endswith(" C")
    gray = _raster_path(data, 30)
    assert _decode(gray, m) == PAYLOAD


def test_chinese_text_roundtrips():
    text = "特种作业操作证 T11010519491231002X 张三"
    assert _decode(np.asarray(Image.open(io.BytesIO(qr_png(qr_matrix(text)))).convert("L"))) == text


@pytest.mark.parametrize("bad", ["", None, 42])
def test_empty_or_non_text_is_refused(bad):
    with pytest.raises(QRError) as e:
        qr_matrix(bad)  # type: ignore[arg-type]
    assert e.value.code == "empty" and "二维码" in str(e.value)


def test_too_long_is_a_typed_error():
    with pytest.raises(QRError) as e:
        qr_matrix("中" * 3000, "H")
    assert e.value.code == "too_long"


def test_bad_parameters():
    m = qr_matrix("abc")
    with pytest.raises(QRError):
        qr_matrix("abc", "X")
    with pytest.raises(QRError):
        qr_png(m, scale=0)
    with pytest.raises(QRError):
        qr_path_data(m, 0)
