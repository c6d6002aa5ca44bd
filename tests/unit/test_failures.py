"""What the Google clients' calls retry (nyctaxi.failures.google_retry), and how long they wait
(bound_requests)."""
from __future__ import annotations

import socket
import time

import pytest
import requests
from google.api_core.exceptions import Forbidden, ServiceUnavailable

from nyctaxi.failures import bound_requests, google_retry


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


def test_a_request_that_sets_no_timeout_waits_the_bound_and_one_that_sets_its_own_keeps_it():
    with socket.create_server(("127.0.0.1", 0)) as frozen:  # the kernel accepts; nobody answers
        url = f"http://127.0.0.1:{frozen.getsockname()[1]}/"
        session = requests.Session()
        bound_requests(session, (2, 0.5))
        for timeout, waits in ((None, 0.5), (1.5, 1.5)):
            started = time.monotonic()
            with pytest.raises(requests.exceptions.ReadTimeout):
                session.get(url, timeout=timeout)
            assert waits <= time.monotonic() - started < waits + 1
