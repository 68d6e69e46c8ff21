"""The URI the sandbox verifies signatures against is the one the client sent the request to."""

from __future__ import annotations

from hwb_sandbox.app import target_uri

ENVIRON = {
    "wsgi.url_scheme": "http",
    "HTTP_HOST": "127.0.0.1:8080",
    "SERVER_NAME": "127.0.0.1",
    "SERVER_PORT": "8080",
    "REQUEST_URI": "/v1/schools/6601234/status?x=1",
    "PATH_INFO": "/v1/schools/6601234/status",
    "QUERY_STRING": "x=1",
}


def test_target_uri_is_scheme_host_and_the_request_target_as_received() -> None:
    assert target_uri(ENVIRON, None) == "http://127.0.0.1:8080/v1/schools/6601234/status?x=1"


def test_public_url_replaces_scheme_and_authority_behind_a_proxy() -> None:
    assert target_uri(ENVIRON, "https://hwb.example.gov.wales/") == (
        "https://hwb.example.gov.wales/v1/schools/6601234/status?x=1"
    )


def test_without_request_uri_the_path_and_query_are_rebuilt() -> None:
    environ = {key: value for key, value in ENVIRON.items() if key != "REQUEST_URI"}

    assert target_uri(environ, None) == "http://127.0.0.1:8080/v1/schools/6601234/status?x=1"


def test_absolute_form_request_target_is_used_as_sent() -> None:
    environ = dict(ENVIRON, REQUEST_URI="http://hwb.test/v1/schools/6601234/status")

    assert target_uri(environ, None) == "http://hwb.test/v1/schools/6601234/status"
    assert target_uri(environ, "https://public.test") == "https://public.test/v1/schools/6601234/status"
