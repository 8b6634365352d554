"""The native API fuzzed from its own OpenAPI schema (schemathesis, in-process through the
WSGI app, bounded): whatever it is sent, no operation answers 5xx, and every refusal uses
the API's JSON error shape."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from smtphub.wsgi import application

schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", application)


@pytest.fixture
def keep_connection():
    """Calling the WSGI app directly fires request_finished, whose close_old_connections
    would close the test's connection (it is inside the test's transaction); Django's test
    client disconnects it the same way."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def fuzz_auth(keep_connection, make_tenant, settings, tmp_path, dns_server):
    # dns_server: the domain checks ask the test DNS server, never the network.
    from hub.contacts import services

    settings.HUB_IMPORT_DIR = tmp_path
    tenant = make_tenant("fuzz")
    ml = services.create_list(tenant.account, "fuzz list")
    services.add_contact(tenant.account, ml.pk, "someone@example.com")
    return {"Authorization": tenant.header}


@schema.parametrize()
@settings(max_examples=20, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
@pytest.mark.django_db(transaction=False)
def test_no_server_errors(case, fuzz_auth):
    response = case.call(headers=fuzz_auth)
    assert response.status_code < 500, (case.method, case.formatted_path, response.status_code, response.text[:500])
    if response.status_code >= 400 and response.headers.get("Content-Type", [""])[0].startswith("application/json"):
        body = response.json()
        assert set(body) == {"error"} and body["error"]["code"] and body["error"]["message"], body
