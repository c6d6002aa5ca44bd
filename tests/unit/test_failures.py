"""What the Google clients' calls retry (nyctaxi.failures.google_retry)."""
from __future__ import annotations

import requests
from google.api_core.exceptions import Forbidden, ServiceUnavailable

from nyctaxi.failures import google_retry


def test_a_403_rate_limit_is_retried_by_its_reason_as_the_client_library_does():
    passing = google_retry()._predicate
    assert passing(Forbidden("Exceeded rate limits: too many table update operations",
                             errors=[{"reason": "rateLimitExceeded"}]))
    assert passing(ServiceUnavailable("backend"))
    assert not passing(Forbidden("Access Denied: Table x: Permission bigquery.tables.get denied",
                                 errors=[{"reason": "accessDenied"}]))


def test_a_refused_connection_is_not_retried_though_the_client_library_would():
    refused = requests.exceptions.ConnectionError("HTTPConnectionPool(host='127.0.0.1', port=9050): Max retries "
                                                  "exceeded ([Errno 111] Connection refused)")
    assert not google_retry()._predicate(refused)
    assert google_retry()._predicate(requests.exceptions.ConnectionError("Connection aborted: reset by peer"))

