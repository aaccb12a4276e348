"""Test harness: offline by default.

- No test reaches the network: a socket may connect only to loopback (local test servers).
- Provider tests replay real recordings with `@pytest.mark.cassette("anthropic/NAME.yaml")`; record
  mode is "none" (a request not in the recording fails the test) unless `--record-mode` says
  otherwise, which is how cassettes are re-recorded with real keys.
- API keys are fake unless recording, and `*_BASE_URL` overrides from the shell are removed.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import vcr
from vcr.serializers import yamlserializer

M = TypeVar("M")
CASSETTES = Path(__file__).resolve().parent.parent / "cassettes"
_SECRET_HEADERS = ("authorization", "x-api-key", "api-key", "openai-organization", "openai-project", "cookie")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--record-mode",
        default="none",
        choices=("none", "once", "new_episodes", "all"),
        help="vcrpy record mode for @pytest.mark.cassette tests (default: none, replay only)",
    )


class _CassetteSerializer:
    """vcrpy's YAML, plus pydantic-ai's `parsed_body` form (JSON kept as a YAML mapping)."""

    @staticmethod
    def deserialize(cassette_string: str) -> dict[str, Any]:
        data: dict[str, Any] = yamlserializer.deserialize(cassette_string)
        for interaction in data["interactions"]:
            for side in ("request", "response"):
                part = interaction[side]
                if "parsed_body" in part:
                    body = json.dumps(part.pop("parsed_body"))
                    part["body"] = body if side == "request" else {"string": body}
        return data

    @staticmethod
    def serialize(cassette_dict: dict[str, Any]) -> str:
        return str(yamlserializer.serialize(cassette_dict))


def _scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    headers = response.get("headers", {})
    for name in list(headers):
        if name.lower() in _SECRET_HEADERS or name.lower() == "set-cookie":
            del headers[name]
    return response


class Recording:
    """A replayed cassette, and the JSON bodies this test really sent (in order)."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.cassette: Any = None


def _recorder(record_mode: str) -> vcr.VCR:
    recorder = vcr.VCR(
        cassette_library_dir=str(CASSETTES),
        record_mode=record_mode,
        match_on=["method", "host", "path"],
        filter_headers=list(_SECRET_HEADERS),
        filter_query_parameters=["key", "api_key", "api-key"],
        before_record_response=_scrub_response,
        decode_compressed_response=False,
    )
    recorder.register_serializer("foreman-yaml", _CassetteSerializer)
    return recorder


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """Refuse every connection that is not to loopback, and give the SDKs fake credentials."""
    recording = request.config.getoption("--record-mode") != "none"
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0]
            if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
                raise ConnectionRefusedError(f"tests are offline: connection to {host} refused")
        return real_connect(self, address)

    if not recording:
        monkeypatch.setattr(socket.socket, "connect", guarded)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-anthropic-key")
        monkeypatch.setenv("OPENAI_API_KEY", "test-openai-key")
    for var in ("ANTHROPIC_BASE_URL", "OPENAI_BASE_URL", "ANTHROPIC_AUTH_TOKEN"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def checked() -> Iterator[Callable[[M], M]]:
    """Wrap a test model: after the test, every request it received must obey the APIs' rules."""
    from tests.conversation_rules import assert_valid_request

    models: list[Any] = []

    def check(model: M) -> M:
        models.append(model)
        return model

    yield check
    for model in models:
        for request in model.requests:
            assert_valid_request(request)


@pytest.fixture
def cassette(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Recording]:
    """Replays the cassette named by `@pytest.mark.cassette(path)`; `.sent` is what was sent."""
    marker = request.node.get_closest_marker("cassette")
    if marker is None:
        raise pytest.UsageError("the cassette fixture needs @pytest.mark.cassette('provider/file.yaml')")
    import httpx2

    recording = Recording()
    real_send = httpx2.AsyncClient.send

    async def send(self: httpx2.AsyncClient, http_request: httpx2.Request, **kwargs: Any) -> httpx2.Response:
        recording.sent.append(json.loads(http_request.content or b"null"))
        return await real_send(self, http_request, **kwargs)

    monkeypatch.setattr(httpx2.AsyncClient, "send", send)
    recorder = _recorder(request.config.getoption("--record-mode"))
    with recorder.use_cassette(marker.args[0], serializer="foreman-yaml") as recorded:
        recording.cassette = recorded
        yield recording


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server for the session (tests/pg.py); skips without one unless CI asks."""
    from tests.pg import cluster

    with cluster() as url:
        if url is None:
            if os.environ.get("FOREMAN_REQUIRE_PG"):
                pytest.fail("FOREMAN_REQUIRE_PG is set but no PostgreSQL is installed (initdb not found)")
            pytest.skip("no PostgreSQL on this machine (set FOREMAN_PG_URL or install postgresql)")
        yield url


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """The URL of a new, empty database of its own for one test."""
    from tests.pg import fresh_database

    return fresh_database(postgres_server)


@pytest.fixture
async def server() -> AsyncIterator[Any]:
    """A local provider server (tests/provider_server.py) for the test; every model the test
    registered in its `opened` closes its connections in the test's loop, then it stops."""
    from tests.provider_server import ProviderServer

    running = ProviderServer().start()
    yield running
    for model in running.opened:
        await model.aclose()
    running.stop()
