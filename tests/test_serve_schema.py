"""Property-based tests of the JSON API from its own OpenAPI spec (schemathesis): no 5xx.

schemathesis' pytest loader for fixtures does not work with the pytest in use, so each
operation's Hypothesis strategy is drawn from directly inside one bounded ``@given`` test.
"""

from __future__ import annotations

import warnings

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance

from sightline.serve import UserStore, create_app

from .serve_support import make_workspace


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> tuple[schemathesis.BaseSchema, dict[str, str]]:
    ws = make_workspace(tmp_path_factory.mktemp("schema") / "ws")
    store = UserStore(ws)
    tokens = {"admin": store.new_token("admin"), "vic": store.new_token("vic")}
    app = create_app(ws, secret=b"z" * 32, api_rate=0)  # fuzzing is not a rate-limit test
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Starlette's "prefer httpx2" notice at first use
        schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
    return schema, tokens


def _operations(schema: schemathesis.BaseSchema) -> list[schemathesis.APIOperation]:
    return [r.ok() for r in schema.get_all_operations()]


_SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@pytest.mark.parametrize("user", ["admin", "vic", None], ids=["admin", "viewer", "anonymous"])
def test_api_never_answers_5xx(api: tuple[schemathesis.BaseSchema, dict[str, str]], user: str | None) -> None:
    schema, tokens = api
    ops = _operations(schema)
    assert len(ops) >= 12
    strategies = [op.as_strategy() for op in ops]
    headers = {"Authorization": f"Bearer {tokens[user]}"} if user else {}
    # Admin answers must match the documented schemas; others must be documented codes.
    checks = [not_a_server_error, status_code_conformance]
    if user == "admin":
        checks.append(response_schema_conformance)

    @_SETTINGS
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        for strategy in strategies:
            case = data.draw(strategy)
            case.call_and_validate(headers=headers, checks=checks)

    run()


def test_spec_lists_the_contract_endpoints(api: tuple[schemathesis.BaseSchema, dict[str, str]]) -> None:
    raw = api[0].raw_schema
    paths = set(raw["paths"])
    for p in (
        "/api/v1/findings",
        "/api/v1/orgs",
        "/api/v1/orgs/{org_id}",
        "/api/v1/evidence",
        "/api/v1/indicators",
        "/api/v1/exposure",
        "/api/v1/export/csv",
        "/api/v1/export/stix",
        "/api/v1/export/misp",
    ):
        assert p in paths, p
    params = {x["name"] for x in raw["paths"]["/api/v1/orgs"]["get"]["parameters"]}
    assert {"verdict", "sector", "country", "since", "until", "limit", "offset"} <= params
    assert not any(p.startswith(("/login", "/orgs", "/static")) for p in paths)
