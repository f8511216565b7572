"""GB 32100 统一社会信用代码 as a licence field: the algorithm lives in ``keys.uscc``
(certificate subjects need it too); this wraps it in field-named licence errors."""

from __future__ import annotations

from keys.uscc import ALPHABET, WEIGHTS, uscc_check_char, uscc_problem

from .errors import LicenceError, field_error

__all__ = ["ALPHABET", "WEIGHTS", "uscc_check_char", "uscc_problem", "validate_uscc"]


def validate_uscc(s: str, *, field: str = "issuer_code") -> str:
    """Return ``s`` if it is a valid USCC, else raise LicenceError naming ``field``."""
    problem = uscc_problem(s)
    if problem:
        code, zh, en = problem
        raise LicenceError([field_error(field, code, f"统一社会信用代码{zh}", f"USCC {en}")])
    return s
