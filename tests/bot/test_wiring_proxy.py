"""DCS requests behind a forward proxy (bot.wiring): ``HTTP_PROXY``/``HTTPS_PROXY`` are honoured
and ``NO_PROXY`` exempts a host, as curl, httpx and slack-sdk read them; without a proxy the
lean transport speaks to DCS directly."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest

from bot.testing.fake_slack import FakeSlack
from bot.testing.loopback import LoopbackHTTPServer, Serving
from bot.testing.simulator import DcsSimulator
from bot.wiring import environment_proxy
from tests.conftest import Harness

PROD = "11111111-1111-4111-8111-111111111111"
_HOP_BY_HOP = {"connection", "proxy-connection", "keep-alive", "transfer-encoding"}


class ForwardProxy:
    """A plain HTTP forward proxy: takes absolute-form requests, sends them on, and records
    every URL it carried."""

    def __init__(self) -> None:
        carried: list[str] = []
        self.carried = carried

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._forward()

            def do_POST(self) -> None:  # Slack's Web API calls go through it too
                self._forward()

            def _forward(self) -> None:
                carried.append(self.path)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with httpx.Client(trust_env=False) as onward:  # never through itself
                    answer = onward.request(self.command, self.path, headers=headers, content=body)
                self.send_response(answer.status_code)
                for name, value in answer.headers.items():
                    if name.lower() not in _HOP_BY_HOP | {"content-length", "content-encoding"}:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, *args: object) -> None:
                """Quiet."""

        self._serving = Serving(LoopbackHTTPServer(("127.0.0.1", 0), Handler), name="proxy")
        self.url = self._serving.url

    def stop(self) -> None:
        """Stop serving."""
        self._serving.stop()


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    served = ForwardProxy()
    yield served
    served.stop()


@pytest.fixture
def no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """An environment with no proxy variable of the machine's."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


def test_dcs_requests_go_through_http_proxy(
    simulator: DcsSimulator,
    slack: FakeSlack,
    tmp_path: Path,
    proxy: ForwardProxy,
    no_proxy_settings: pytest.MonkeyPatch,
) -> None:
    """With HTTP_PROXY set, every DCS request goes through the proxy, signed as before, and the
    alert reaches Slack."""
    no_proxy_settings.setenv("HTTP_PROXY", proxy.url)
    simulator.add_instance("cache-prod", instance_id=PROD)
    h = Harness(simulator, slack, tmp_path / "s.sqlite")
    try:
        assert h.cycle().ok
        simulator.add_task(PROD, "EXTEND", "EXECUTING")
        assert h.cycle().ok
    finally:
        h.close()
    dcs = [url for url in proxy.carried if url.startswith(simulator.url)]
    assert any(f"/instances/{PROD}/tasks" in url for url in dcs)
    assert len(h.slack_calls("chat.postMessage")) == 1


def test_no_proxy_exempts_the_dcs_host(
    simulator: DcsSimulator,
    slack: FakeSlack,
    tmp_path: Path,
    proxy: ForwardProxy,
    no_proxy_settings: pytest.MonkeyPatch,
) -> None:
    """NO_PROXY naming the endpoint's host: DCS is asked directly."""
    no_proxy_settings.setenv("HTTP_PROXY", proxy.url)
    no_proxy_settings.setenv("NO_PROXY", "127.0.0.1")
    simulator.add_instance("cache-prod", instance_id=PROD)
    h = Harness(simulator, slack, tmp_path / "s.sqlite")
    try:
        assert h.cycle().ok
    finally:
        h.close()
    assert proxy.carried == []


@pytest.mark.parametrize(
    ("env", "url", "expected"),
    [
        ({}, "https://dcs.eu-de.otc.t-systems.com", None),
        ({"HTTPS_PROXY": "http://p:3128"}, "https://dcs.eu-de.otc.t-systems.com", "http://p:3128"),
        ({"https_proxy": "http://p:3128"}, "https://dcs.eu-de.otc.t-systems.com", "http://p:3128"),
        ({"HTTPS_PROXY": "http://p:3128"}, "http://dcs.example", None),
        ({"ALL_PROXY": "http://p:1"}, "https://dcs.example", "http://p:1"),
        (
            {"HTTPS_PROXY": "http://p:3128", "NO_PROXY": ".otc.t-systems.com"},
            "https://dcs.eu-de.otc.t-systems.com",
            None,
        ),
    ],
)
def test_environment_proxy_reads_the_variables_as_curl_does(
    no_proxy_settings: pytest.MonkeyPatch, env: dict[str, str], url: str, expected: str | None
) -> None:
    for name, value in env.items():
        no_proxy_settings.setenv(name, value)
    assert environment_proxy(url) == expected
