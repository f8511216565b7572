"""Coverage-guided fuzzing (atheris/libFuzzer) of the four parsers that take untrusted bytes.

``python -m tests.fuzz TARGET [libFuzzer flags]``, TARGET one of `targets.TARGETS` or ``all``
(each target in its own process, one after the other). The seed corpus is generated at
start (`seeds.py`: a real licence sealed with throw-away development keys), never committed.
A target fails only when an exception other than the parser's own typed error escapes:
that is a crash, and every crash becomes a regression test in tests/test_hostile_catalogue.py.
"""
