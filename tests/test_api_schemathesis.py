"""Schemathesis against our own OpenAPI, in process (no network): whatever it sends,
no 5xx, and every answer matches the documented status codes, media types and schemas."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

_state: dict = {}


@schemathesis.serializer("application/x-ndjson")
def _ndjson(ctx, value) -> bytes:
    """Whatever was generated, as text lines (the schema says: a string of JSON lines)."""
    import json

    return value.encode("utf-8") if isinstance(value, str) else json.dumps(value).encode("utf-8")


@schemathesis.serializer("application/ofd", "application/octet-stream")
def _binary(ctx, value) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode("utf-8")


def _app():
    """One app on a fresh keystore, with an issue token (built lazily at collection)."""
    if "app" not in _state:
        import atexit
        import shutil
        import tempfile

        from api.app import create_app
        from api.auth import TokenStore
        from api.settings import load_api_settings
        from keys.config import load_settings
        from keys.store import KeyStore

        home = tempfile.mkdtemp(prefix="ecert_schemathesis_")
        atexit.register(shutil.rmtree, home, True)
        env = {"ECERT_HOME": home}
        with KeyStore(load_settings(env)) as store:
            store.init_dev()
        ts = TokenStore(load_settings(env).database_url)
        _state["token"] = ts.create("schemathesis", ["issue"])[0]
        ts.close()
        # jobs are accepted and reported but not run: a generated upload must not start a Dask cluster
        _state["app"] = create_app(load_api_settings({**env, "ECERT_JOB_RUNNER": "0"}, sign_workers=0,
                                                     max_upload_bytes=1024 * 1024))
    return _state["app"]


schema = schemathesis.openapi.from_asgi("/openapi.json", _app())


@schema.parametrize()
@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
def test_api_conforms_to_its_schema(case):
    headers = {"Authorization": f"Bearer {_state['token']}"}
    # A schema-valid record may still be refused (GB 11643 check digit, catalogue, dates): those
    # rules are not expressible in JSON Schema, so "positive data accepted" cannot hold here.
    case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])


def test_every_route_is_covered():
    ops = {f"{op.method.upper()} {op.path}" for op in (r.ok() for r in schema.get_all_operations())}
    assert {"POST /v1/licences", "POST /v1/licences:batch", "POST /v1/verify", "GET /metrics"} <= ops
