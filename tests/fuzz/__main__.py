"""``python -m tests.fuzz TARGET|all [libFuzzer flags] [-corpus=DIR]``, e.g. ``ofd_reader -runs=1000000``.

The target's modules are imported under atheris instrumentation (coverage guidance only
for our parsers: the ofd, signer and verifier packages); the seed corpus is generated
into a fresh directory unless ``-corpus=DIR`` names one. Crash inputs are written next
to it (``-artifact_prefix``). ``all`` runs every target in its own process, in turn, and
exits non-zero if any found a crash.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import atheris

NAMES = ("ofd_reader", "ses_der", "qr_payload", "record_validator")
_INSTRUMENTED = ["ofd", "signer", "verifier"]


def _run_all(args: list[str]) -> int:
    failed = []
    for name in NAMES:
        t0 = time.monotonic()
        rc = subprocess.call([sys.executable, "-m", "tests.fuzz", name, *args])
        print(f"== {name}: exit {rc} after {time.monotonic() - t0:.0f} s", flush=True)
        if rc:
            failed.append(name)
    print("== crashes in: " + (", ".join(failed) if failed else "none"), flush=True)
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] not in (*NAMES, "all"):
        print(__doc__.strip(), file=sys.stderr)
        print(f"targets: {', '.join(NAMES)}, all", file=sys.stderr)
        return 2
    name, rest = argv[1], argv[2:]
    if name == "all":
        return _run_all(rest)
    corpus = next((a.split("=", 1)[1] for a in rest if a.startswith("-corpus=")), None)
    rest = [a for a in rest if not a.startswith("-corpus=")]
    with atheris.instrument_imports(include=_INSTRUMENTED):
        from . import targets
    from .seeds import write_corpus

    where = write_corpus(name, Path(corpus) if corpus else None)
    if not any(a.startswith("-artifact_prefix=") for a in rest):
        rest.append(f"-artifact_prefix={where}/crash-")
    print(f"== {name}: corpus {where}", flush=True)
    atheris.Setup([argv[0], *rest, str(where)], targets.TARGETS[name])
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
