"""SM2 through ecert's seam next to `openssl speed sm2`, measured in the same run."""

from __future__ import annotations

import re
import subprocess

from keys import sm2

from .harness import rate

MESSAGE = b"x" * 200  # about the size of a TBS_Sign digest input's tail; e is computed per call


def openssl_speed(seconds: int = 1) -> tuple[float, float]:
    """(sign/s, verify/s) from `openssl speed -seconds N sm2` on one core."""
    out = subprocess.run(
        ["openssl", "speed", "-seconds", str(seconds), "sm2"], capture_output=True, text=True, check=True
    ).stdout
    m = re.search(r"SM2 \(CurveSM2\)\s+[\d.]+s\s+[\d.]+s\s+([\d.]+)\s+([\d.]+)", out)
    if not m:
        raise RuntimeError("could not parse `openssl speed sm2` output")
    return float(m.group(1)), float(m.group(2))


def ours(seconds: float = 0.5) -> dict[str, float]:
    key = sm2.generate()
    pub = key.public_key
    sig = key.sign(MESSAGE)
    return {
        "sm2_keygen_per_s": rate(sm2.generate, seconds),
        "sm2_sign_per_s": rate(lambda: key.sign(MESSAGE), seconds),
        "sm2_verify_per_s": rate(lambda: pub.verify(MESSAGE, sig), seconds),
    }


def run(rounds: int = 2) -> dict[str, float]:
    """Alternate OpenSSL and ours so both see the same machine state; keep the best of each."""
    best: dict[str, float] = {}
    for _ in range(rounds):
        o_sign, o_verify = openssl_speed()
        for k, v in {"openssl_sm2_sign_per_s": o_sign, "openssl_sm2_verify_per_s": o_verify, **ours()}.items():
            best[k] = max(best.get(k, 0.0), v)
    best["sm2_sign_ratio_vs_openssl"] = best["sm2_sign_per_s"] / best["openssl_sm2_sign_per_s"]
    best["sm2_verify_ratio_vs_openssl"] = best["sm2_verify_per_s"] / best["openssl_sm2_verify_per_s"]
    return best


def table_rows(r: dict[str, float]) -> list[tuple[str, str, str, str]]:
    sign_b, verify_b = sm2.backends()
    return [
        (f"SM2 sign ({sign_b})", f"{r['sm2_sign_per_s']:,.0f}/s", f"openssl speed {r['openssl_sm2_sign_per_s']:,.0f}/s",
         f"{r['sm2_sign_ratio_vs_openssl']:.2f}×"),
        (f"SM2 verify ({verify_b})", f"{r['sm2_verify_per_s']:,.0f}/s",
         f"openssl speed {r['openssl_sm2_verify_per_s']:,.0f}/s", f"{r['sm2_verify_ratio_vs_openssl']:.2f}×"),
        ("SM2 keygen", f"{r['sm2_keygen_per_s']:,.0f}/s", "", ""),
    ]
