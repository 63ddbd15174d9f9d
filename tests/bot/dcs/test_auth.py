"""Tests for bot.dcs.auth: AK/SK signing and verification, IAM and ready tokens."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import load_settings
from bot.dcs.auth import (
    AkSkAuth,
    IamTokenAuth,
    TokenAuth,
    canonical_query,
    canonical_uri,
    default_signed_headers,
    sign,
)
from bot.dcs.errors import DcsAuthError, DcsBadResponseError, DcsError, DcsUnavailableError
from bot.testing.aksk import verify_signed_request
from bot.testing.loopback import LoopbackHTTPServer, Serving
from bot.wiring import dcs_auth

# The official published example (API signing guide).
VECTOR_AK = "QTWAOYTTINDUT2QVKYUC"
VECTOR_SK = "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc"
VECTOR_DATE = datetime(2019, 11, 15, 3, 36, 55, tzinfo=UTC)
VECTOR_URL = (
    "https://service.region.example.com/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs"
    "?limit=2&marker=13551d6b-755d-4757-b956-536f674975c0"
)
VECTOR_SIGNATURE = "7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe"

PASSWORD = "pa55-w0rd-do-not-leak"
T0 = datetime(2025, 1, 1, tzinfo=UTC)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def vector_auth() -> AkSkAuth:
    return AkSkAuth(VECTOR_AK, VECTOR_SK, clock=lambda: VECTOR_DATE)


def signed(request: httpx.Request, auth: AkSkAuth) -> httpx.Request:
    """Drive auth_flow once and return the request it yields."""
    flow = auth.sync_auth_flow(request)
    return next(flow)


def verify(request: httpx.Request, now: datetime = VECTOR_DATE, **changes: Any) -> str | None:
    """verify_signed_request on what ``request`` puts on the wire (``changes`` tamper with it)."""
    raw_path, _, query = request.url.raw_path.decode().partition("?")
    args: dict[str, Any] = {
        "method": request.method,
        "raw_path": raw_path,
        "query_string": query,
        "headers": dict(request.headers),
        "body": request.content,
        "secret_for": {VECTOR_AK: VECTOR_SK}.get,
        "now": now,
    }
    args.update(changes)
    return verify_signed_request(**args)


# --- AK/SK signing -------------------------------------------------------------------------


def test_auth_flow_reproduces_the_official_vector() -> None:
    """auth_flow on the published example yields its exact X-Sdk-Date and signature."""
    request = httpx.Request("GET", VECTOR_URL, headers={"Content-Type": "application/json"})
    out = signed(request, vector_auth())
    assert out.headers["X-Sdk-Date"] == "20191115T033655Z"
    assert out.headers["Authorization"] == (
        f"SDK-HMAC-SHA256 Access={VECTOR_AK}, SignedHeaders=content-type;host;x-sdk-date, "
        f"Signature={VECTOR_SIGNATURE}"
    )


def test_sign_function_reproduces_the_official_vector() -> None:
    """The pure sign() gives the vector's signed headers and signature, taking Host from the URL."""
    headers = {"Content-Type": "application/json", "X-Sdk-Date": "20191115T033655Z"}
    assert sign("GET", VECTOR_URL, headers, b"", VECTOR_SK) == (
        "content-type;host;x-sdk-date",
        VECTOR_SIGNATURE,
    )


def test_sign_requires_the_date_header() -> None:
    """sign() refuses a request without X-Sdk-Date rather than signing an undated request."""
    with pytest.raises(ValueError, match="X-Sdk-Date"):
        sign("GET", VECTOR_URL, {"Host": "h"}, b"", VECTOR_SK)


@pytest.mark.parametrize(
    ("raw_path", "expected"),
    [
        ("/", "/"),
        ("", "/"),
        ("/v1/abc", "/v1/abc/"),
        ("/v1/abc/", "/v1/abc/"),
        ("/a%20b/c", "/a%20b/c/"),
        ("/a b", "/a%20b/"),
        ("/%C3%A9", "/%C3%A9/"),
        ("/a~b*c:d", "/a~b%2Ac%3Ad/"),
        ("/a%7eb", "/a~b/"),
    ],
)
def test_canonical_uri(raw_path: str, expected: str) -> None:
    """The canonical URI re-encodes each decoded segment (RFC 3986) and always ends with /."""
    assert canonical_uri(raw_path) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ""),
        ("b=2&a=1", "a=1&b=2"),
        ("a=2&a=1", "a=1&a=2"),
        ("a=b+c", "a=b%20c"),
        ("flag", "flag="),
        ("x=%7e*", "x=~%2A"),
        ("k%3D=v%26", "k%3D=v%26"),
    ],
)
def test_canonical_query(query: str, expected: str) -> None:
    """The canonical query sorts by key then value and RFC 3986-encodes both."""
    assert canonical_query(query) == expected


def test_default_signed_headers_skip_transport_headers() -> None:
    """Host, Content-Type and X- headers are signed; transport and underscored ones are not."""
    names = [
        "Host",
        "Content-Type",
        "X-Sdk-Date",
        "X-Project-Id",
        "Accept",
        "Accept-Encoding",
        "Connection",
        "User-Agent",
        "Content-Length",
        "X_Under",
    ]
    assert default_signed_headers(names) == [
        "content-type",
        "host",
        "x-project-id",
        "x-sdk-date",
    ]


def test_aksk_repr_hides_the_secret_key() -> None:
    """repr() of AkSkAuth never shows the secret key."""
    assert VECTOR_SK not in repr(vector_auth())


@pytest.mark.parametrize(("ak", "sk"), [("", "sk"), ("ak", "")])
def test_aksk_needs_both_keys(ak: str, sk: str) -> None:
    """An empty access or secret key is refused at construction."""
    with pytest.raises(ValueError, match="access key and a secret key"):
        AkSkAuth(ak, sk)


# Random requests for the property tests.
_segment = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/?#"), max_size=8
)
_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8)
_header_value = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=16)
_header_name = st.from_regex(r"\A[Xx]-[A-Za-z0-9_-]{1,12}\Z").filter(
    lambda name: name.lower() not in ("x-sdk-date", "x-sdk-content-sha256")
)


@st.composite
def random_requests(draw: st.DrawFn) -> tuple[httpx.Request, list[tuple[str, str]], datetime]:
    """A request with random method, path, query, headers and body, plus its query pairs."""
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]))
    host = draw(st.sampled_from(["dcs.example.com", "dcs.example.com:8443", "127.0.0.1:9"]))
    path = "/" + "/".join(quote(s, safe="") for s in draw(st.lists(_segment, max_size=4)))
    pairs = draw(st.lists(st.tuples(_text, _text), max_size=5))
    headers: dict[str, str] = {}
    for name, value in draw(st.lists(st.tuples(_header_name, _header_value), max_size=4)):
        if name.lower() not in {key.lower() for key in headers}:
            headers[name] = value
    content_type = draw(
        st.sampled_from([None, "application/json", "application/json;charset=utf8"])
    )
    if content_type:
        headers["Content-Type"] = content_type
    body = draw(st.binary(max_size=64))
    when = draw(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 1, 1)))
    request = httpx.Request(
        method, f"https://{host}{path}", params=pairs, headers=headers, content=body
    )
    return request, pairs, when.replace(microsecond=0, tzinfo=UTC)


@settings(max_examples=300, deadline=None)
@given(random_requests())
def test_signature_matches_the_official_sdk_signer(
    case: tuple[httpx.Request, list[tuple[str, str]], datetime],
) -> None:
    """For random requests AkSkAuth's Authorization equals huaweicloudsdkcore's Signer's."""
    request, pairs, when = case
    out = signed(request, AkSkAuth("AK", "sk-secret", clock=lambda: when))
    header_params = {
        name: value
        for name, value in out.headers.items()
        if name.lower().startswith("x-") or name.lower() in ("host", "content-type")
    }
    sdk = SdkRequest(
        method=request.method,
        schema="https",
        host=request.url.netloc.decode(),
        resource_path=request.url.raw_path.decode().partition("?")[0],
        query_params=list(pairs),
        header_params=header_params,
        body=request.content,
    )
    Signer(BasicCredentials("AK", "sk-secret")).sign(sdk)
    assert out.headers["Authorization"] == sdk.header_params["Authorization"]


@settings(max_examples=200, deadline=None)
@given(random_requests())
def test_random_signed_requests_verify(
    case: tuple[httpx.Request, list[tuple[str, str]], datetime],
) -> None:
    """Whatever AkSkAuth signs, verify_signed_request accepts as received."""
    request, _, when = case
    out = signed(request, AkSkAuth(VECTOR_AK, VECTOR_SK, clock=lambda: when))
    assert verify(out, now=when) is None


# --- Verification --------------------------------------------------------------------------


def vector_request() -> httpx.Request:
    return signed(
        httpx.Request(
            "POST",
            VECTOR_URL,
            headers={"Content-Type": "application/json", "X-Project-Id": "p1"},
            content=b'{"a": 1}',
        ),
        vector_auth(),
    )


def test_vector_request_verifies() -> None:
    """A request signed by AkSkAuth verifies."""
    assert verify(vector_request()) is None


def _with_header(name: str, value: str | None) -> dict[str, str]:
    headers = dict(vector_request().headers)
    headers.pop(name, None)
    if value is not None:
        headers[name] = value
    return headers


_AUTH = vector_request().headers["authorization"]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"query_string": "limit=3&marker=13551d6b-755d-4757-b956-536f674975c0"}, "mismatch"),
        ({"query_string": ""}, "signature mismatch"),
        ({"raw_path": "/v1/77b6a44cba5143ab91d13ab9a8ff44fd/ports"}, "signature mismatch"),
        ({"method": "PUT"}, "signature mismatch"),
        ({"body": b'{"a": 2}'}, "signature mismatch"),
        ({"headers": _with_header("x-project-id", "p2")}, "signature mismatch"),
        ({"headers": _with_header("host", "evil.example.com")}, "signature mismatch"),
        ({"headers": _with_header("x-sdk-date", "20191115T033656Z")}, "signature mismatch"),
        ({"secret_for": {VECTOR_AK: "another-sk"}.get}, "signature mismatch"),
        ({"now": VECTOR_DATE + timedelta(minutes=16)}, "X-Sdk-Date too old"),
        ({"now": VECTOR_DATE - timedelta(minutes=16)}, "X-Sdk-Date in the future"),
        ({"headers": _with_header("authorization", None)}, "missing Authorization"),
        ({"headers": _with_header("authorization", "Basic eDp5")}, "unsupported"),
        ({"headers": _with_header("authorization", "SDK-HMAC-SHA256 x")}, "malformed"),
        ({"headers": _with_header("x-sdk-date", None)}, "missing X-Sdk-Date"),
        ({"headers": _with_header("x-sdk-date", "yesterday")}, "malformed X-Sdk-Date"),
        ({"headers": _with_header("x-project-id", None)}, "signed header missing"),
        ({"secret_for": {}.get}, "unknown access key"),
        (
            {"headers": _with_header("authorization", _AUTH.replace("content-type;host;", ""))},
            "host not signed",
        ),
    ],
)
def test_tampered_or_stale_requests_are_refused(changes: dict[str, Any], reason: str) -> None:
    """Any change to a signed part, a wrong key or a stale date gives a short reason."""
    result = verify(vector_request(), **changes)
    assert result is not None
    assert reason in result


def test_unsigned_payload_from_the_official_sdk_verifies() -> None:
    """A non-JSON body signed by the official SDK (X-Sdk-Content-Sha256) verifies as sent."""
    sdk = SdkRequest(
        method="PUT",
        schema="https",
        host="dcs.example.com",
        resource_path="/v2/p/x",
        query_params=[("a", "1")],
        header_params={"Content-Type": "text/plain", "X-Sdk-Date": "20191115T033655Z"},
        body=b"plain text",
    )
    Signer(BasicCredentials(VECTOR_AK, VECTOR_SK)).sign(sdk)
    reason = verify_signed_request(
        "PUT",
        "/v2/p/x",
        "a=1",
        sdk.header_params,
        b"plain text",
        {VECTOR_AK: VECTOR_SK}.get,
        VECTOR_DATE,
    )
    assert reason is None


def serve(handler: type[BaseHTTPRequestHandler], state: Any = None) -> Serving:
    """``handler`` served on a loopback port, with ``state`` for it to read."""
    server = LoopbackHTTPServer(("127.0.0.1", 0), handler)
    server.state = state  # type: ignore[attr-defined]  # read by the handlers below
    return Serving(server, name="test-auth")


class QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output clean."""

    def reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))


class VerifyingHandler(QuietHandler):
    """Answers 200 when the request's AK/SK signature verifies, else 401 with the reason."""

    def handle_any(self) -> None:
        raw_path, _, query = self.path.partition("?")
        reason = verify_signed_request(
            self.command,
            raw_path,
            query,
            dict(self.headers.items()),
            self.body(),
            {VECTOR_AK: VECTOR_SK}.get,
            datetime.now(UTC),
        )
        self.reply(401 if reason else 200, {"reason": reason})

    do_GET = do_POST = do_PUT = do_DELETE = handle_any


@pytest.fixture
def verifying_server() -> Iterator[Serving]:
    server = serve(VerifyingHandler)
    yield server
    server.stop()


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_signed_requests_verify_after_a_real_round_trip(
    verifying_server: Serving, method: str
) -> None:
    """Requests sent by an httpx.Client with AkSkAuth verify on a real server: nothing changed."""
    with httpx.Client(base_url=verifying_server.url, auth=AkSkAuth(VECTOR_AK, VECTOR_SK)) as c:
        response = c.request(
            method,
            "/v2/proj/instances/a b~c/tasks",
            params={"start_time": "20250101000000", "q": "x+y z", "é": "ü"},
            json={"k": "v"} if method == "POST" else None,
        )
    assert response.json() == {"reason": None}
    assert response.status_code == 200


def test_unsigned_request_is_refused_by_a_real_server(verifying_server: Serving) -> None:
    """Without AkSkAuth the loopback server answers 401 (the round-trip test can fail)."""
    response = httpx.get(verifying_server.url + "/v2/x")
    assert response.status_code == 401
    assert response.json() == {"reason": "missing Authorization"}


# --- IAM token -----------------------------------------------------------------------------


@dataclass
class IamState:
    """What the fake IAM and protected API do and have seen."""

    password: str = PASSWORD
    expires_at: str | None = (T0 + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    iam_status: int | None = None  # forced status for /v3/auth/tokens
    send_token: bool = True
    echo_refused: bool = False  # a refusal echoes the request body and the password it sent
    reject_all_tokens: bool = False
    fetch_gate: threading.Event | None = None
    fetches: int = 0
    bodies: list[Any] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    valid: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def token(self, number: int) -> str:
        return f"MIIsecret-token-{number}"


class IamHandler(QuietHandler):
    """Plays IAM's /v3/auth/tokens and a token-protected /v2/... resource."""

    @property
    def state(self) -> IamState:
        return self.server.state  # type: ignore[attr-defined, no-any-return]

    def do_POST(self) -> None:
        state = self.state
        if not self.path.startswith("/v3/auth/tokens"):
            self.reply(404, {"error_code": "X.404", "error_msg": "not found"})
            return
        sent = self.body()
        body = json.loads(sent)
        with state.lock:
            state.fetches += 1
            number = state.fetches
            state.bodies.append(body)
            state.headers.append(dict(self.headers.items()))
            if number == 2 and state.fetch_gate is not None:
                state.fetch_gate.set()
        if number == 1 and state.fetch_gate is not None:
            state.fetch_gate.wait(0.5)  # give a second, concurrent fetch the chance to happen
        if state.iam_status is not None:
            self.reply(state.iam_status, {"error": {"code": state.iam_status, "message": "x"}})
            return
        user = body["auth"]["identity"]["password"]["user"]
        if user["password"] != state.password and state.echo_refused:
            error = {"code": user["password"], "title": user["password"], "message": sent.decode()}
            self.reply(401, {"error": error})
            return
        if user["password"] != state.password:
            self.reply(
                401,
                {
                    "error": {
                        "code": 401,
                        "title": "Unauthorized",
                        "message": "The username or password is wrong.",
                    }
                },
            )
            return
        token = state.token(number)
        with state.lock:
            state.valid.add(token)
        payload: dict[str, Any] = {"token": {"methods": ["password"]}}
        if state.expires_at is not None:
            payload["token"]["expires_at"] = state.expires_at
        self.reply(201, payload, {"X-Subject-Token": token} if state.send_token else {})

    def do_GET(self) -> None:
        state = self.state
        token = self.headers.get("X-Auth-Token")
        with state.lock:
            ok = token in state.valid and not state.reject_all_tokens
        if ok:
            self.reply(200, {"token": token})
        else:
            self.reply(401, {"error_code": "APIGW.0301", "error_msg": "Incorrect IAM token"})


@pytest.fixture
def iam() -> Iterator[tuple[Serving, IamState]]:
    state = IamState()
    server = serve(IamHandler, state)
    yield server, state
    server.stop()


def iam_auth(
    server: Serving,
    clock: FakeClock | None = None,
    password: str = PASSWORD,
    **kwargs: Any,
) -> IamTokenAuth:
    kwargs.setdefault("project_id", "0123456789abcdef")
    return IamTokenAuth(
        server.url + "/v3/",
        "alice",
        password,
        "tenant-domain",
        clock=clock or FakeClock(),
        **kwargs,
    )


def test_token_is_fetched_once_and_cached(iam: tuple[Serving, IamState]) -> None:
    """Several requests share one token fetched once, sent as X-Auth-Token."""
    server, state = iam
    with httpx.Client(base_url=server.url, auth=iam_auth(server)) as client:
        answers = [client.get("/v2/p/instances").json() for _ in range(3)]
    assert state.fetches == 1
    assert answers == [{"token": state.token(1)}] * 3


def test_token_is_fetched_again_near_expiry(iam: tuple[Serving, IamState]) -> None:
    """The token is reused until refresh_margin before expires_at, then fetched again."""
    server, state = iam
    clock = FakeClock()
    with httpx.Client(base_url=server.url, auth=iam_auth(server, clock)) as client:
        client.get("/v2/p")
        clock.advance(timedelta(minutes=54))
        client.get("/v2/p")
        assert state.fetches == 1
        clock.advance(timedelta(minutes=2))  # 4 minutes left < 5 minutes margin
        assert client.get("/v2/p").json() == {"token": state.token(2)}
    assert state.fetches == 2


def test_a_401_fetches_a_new_token_once_and_succeeds(
    iam: tuple[Serving, IamState],
) -> None:
    """When the API refuses the cached token, one new token is fetched and the request repeated."""
    server, state = iam
    with httpx.Client(base_url=server.url, auth=iam_auth(server)) as client:
        client.get("/v2/p")
        state.valid.clear()  # IAM revoked the token
        response = client.get("/v2/p")
    assert response.status_code == 200
    assert response.json() == {"token": state.token(2)}
    assert state.fetches == 2


def test_a_second_401_is_returned_without_looping(iam: tuple[Serving, IamState]) -> None:
    """If the fresh token is refused too, the 401 comes back and no third token is fetched."""
    server, state = iam
    state.reject_all_tokens = True
    with httpx.Client(base_url=server.url, auth=iam_auth(server)) as client:
        response = client.get("/v2/p")
    assert response.status_code == 401
    assert state.fetches == 2


def test_concurrent_requests_fetch_one_token(iam: tuple[Serving, IamState]) -> None:
    """Threads asking for a token at the same time wait for one fetch instead of each fetching."""
    server, state = iam
    state.fetch_gate = threading.Event()
    auth = iam_auth(server)
    with ThreadPoolExecutor(max_workers=4) as pool:
        tokens = list(pool.map(lambda _: auth.token(), range(4)))
    assert state.fetches == 1
    assert tokens == [state.token(1)] * 4


@pytest.mark.parametrize(
    ("kwargs", "scope"),
    [
        ({"project_id": "pid"}, {"project": {"id": "pid"}}),
        (
            {"project_id": None, "project_name": "eu-de"},
            {"project": {"name": "eu-de", "domain": {"name": "tenant-domain"}}},
        ),
    ],
)
def test_token_request_body(
    iam: tuple[Serving, IamState], kwargs: dict[str, Any], scope: dict[str, Any]
) -> None:
    """The token request is a password login of the user in its domain, scoped to the project."""
    server, state = iam
    iam_auth(server, **kwargs).token()
    assert state.bodies == [
        {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": "alice",
                            "password": PASSWORD,
                            "domain": {"name": "tenant-domain"},
                        }
                    },
                },
                "scope": scope,
            }
        }
    ]


def test_iam_needs_a_project_scope() -> None:
    """Without project id or name the auth refuses to be built."""
    with pytest.raises(ValueError, match="project"):
        IamTokenAuth("https://iam.example.com/v3", "u", "p", "d")


def test_missing_expires_at_uses_the_default_lifetime(
    iam: tuple[Serving, IamState],
) -> None:
    """A token without a readable expires_at is kept for default_lifetime, then refreshed."""
    server, state = iam
    state.expires_at = None
    clock = FakeClock()
    auth = iam_auth(server, clock)
    auth.token()
    clock.advance(IamTokenAuth.default_lifetime - timedelta(minutes=6))
    auth.token()
    assert state.fetches == 1
    clock.advance(timedelta(minutes=2))
    auth.token()
    assert state.fetches == 2


def _closed_port_url() -> str:
    server = LoopbackHTTPServer(("127.0.0.1", 0), QuietHandler)
    port = server.server_address[1]
    server.server_close()
    return f"http://127.0.0.1:{port}/v3"


@pytest.mark.parametrize(
    ("setup", "error", "words"),
    [
        ({"password": "wrong-password"}, DcsAuthError, "password is wrong"),
        ({"iam_status": 403}, DcsAuthError, "IAM refused"),
        ({"iam_status": 500}, DcsUnavailableError, "HTTP 500"),
        ({"iam_status": 429}, DcsUnavailableError, "HTTP 429"),
        ({"send_token": False}, DcsBadResponseError, "X-Subject-Token"),
    ],
)
def test_failed_token_fetch_raises_a_dcs_error(
    iam: tuple[Serving, IamState], setup: dict[str, Any], error: type[DcsError], words: str
) -> None:
    """IAM refusing, failing or answering without a token raises the matching DcsError."""
    server, state = iam
    for name, value in setup.items():
        setattr(state, name, value)
    with (
        httpx.Client(base_url=server.url, auth=iam_auth(server, password=PASSWORD)) as client,
        pytest.raises(error, match=words) as caught,
    ):
        client.get("/v2/p")
    assert PASSWORD not in str(caught.value)


@pytest.mark.parametrize(
    "password",
    [
        "p@ss.w*rd+(x)?[a]{2}|^$",
        "quote\"double'single",
        "back\\slash\\n-tab\t",
        "ünïcødé-パスワード-🔑",
        "a&b=c%20d/e?f#g",
    ],
)
def test_a_password_echoed_by_iam_is_redacted_whatever_it_contains(
    iam: tuple[Serving, IamState], password: str
) -> None:
    """IAM echoing a refused password (as code, title and inside the JSON body it received)
    leaves no trace of it in the error, raw or escaped."""
    server, state = iam
    state.echo_refused = True
    with pytest.raises(DcsAuthError) as caught:
        iam_auth(server, password=password).token()
    text = f"{caught.value} {caught.value.error_code} {caught.value.error_msg}"
    assert "IAM refused a token for user 'alice'" in text
    for form in (
        password,
        json.dumps(password)[1:-1],
        json.dumps(password, ensure_ascii=False)[1:-1],
    ):
        assert form not in text


def test_unreachable_iam_raises_unavailable() -> None:
    """A connection error while fetching the token raises DcsUnavailableError."""
    auth = IamTokenAuth(_closed_port_url(), "alice", PASSWORD, "d", project_id="p")
    with pytest.raises(DcsUnavailableError, match="IAM token request"):
        auth.token()
    auth.close()


def test_wrong_password_error_never_shows_the_password(
    iam: tuple[Serving, IamState],
) -> None:
    """A refused login raises DcsAuthError (401) that names the user but not the password."""
    server, _ = iam
    with pytest.raises(DcsAuthError) as caught:
        iam_auth(server, password="hunter2-wrong").token()
    assert caught.value.status_code == 401
    assert "alice" in str(caught.value)
    assert "hunter2-wrong" not in str(caught.value)
    assert "hunter2-wrong" not in repr(caught.value)


# --- Ready token and choice by settings ----------------------------------------------------


def test_ready_token_is_sent_as_x_auth_token(iam: tuple[Serving, IamState]) -> None:
    """TokenAuth sends its token as X-Auth-Token unchanged."""
    server, state = iam
    state.valid.add("ready-token-value")
    with httpx.Client(base_url=server.url, auth=TokenAuth("ready-token-value")) as client:
        assert client.get("/v2/p").json() == {"token": "ready-token-value"}


BASE_ENV = {"DCS_ENDPOINT": "https://dcs.example.com", "DCS_PROJECT_ID": "dcs-project"}
AKSK_ENV = {"DCS_ACCESS_KEY": "AK", "DCS_SECRET_KEY": "SK-secret"}
IAM_ENV = {
    "OS_AUTH_URL": "https://iam.example.com/v3",
    "OS_USERNAME": "alice",
    "OS_PASSWORD": PASSWORD,
    "OS_USER_DOMAIN_NAME": "d",
}
TOKEN_ENV = {"DCS_AUTH_TOKEN": "ready-token-value"}


def test_dcs_auth_fetches_tokens_with_the_factory_client(
    iam: tuple[Serving, IamState],
) -> None:
    """dcs_auth's IAM auth fetches tokens through the client made by client_factory."""
    server, state = iam
    env = {**BASE_ENV, **IAM_ENV, "OS_AUTH_URL": server.url + "/v3"}
    auth = dcs_auth(
        load_settings(env), client_factory=lambda: httpx.Client(headers={"X-Made-By": "factory"})
    )
    assert isinstance(auth, IamTokenAuth)
    auth.token()
    assert state.headers[0].get("X-Made-By") == "factory"


def test_no_secret_in_any_repr_or_error(iam: tuple[Serving, IamState]) -> None:
    """No SK, password or token shows in the repr of any auth or in any error message."""
    server, state = iam
    iam_ok = iam_auth(server)
    token = iam_ok.token()
    texts = [repr(vector_auth()), repr(iam_ok), str(iam_ok), repr(TokenAuth("ready-token-value"))]
    built = dcs_auth(load_settings({**BASE_ENV, **AKSK_ENV}))
    texts.append(repr(built))
    for failing in (
        lambda: iam_auth(server, password="wrong-" + PASSWORD).token(),
        lambda: IamTokenAuth(_closed_port_url(), "a", PASSWORD, "d", project_id="p").token(),
    ):
        with pytest.raises(DcsError) as caught:
            failing()
        texts += [str(caught.value), repr(caught.value)]
    state.iam_status = 500
    with pytest.raises(DcsError) as caught:
        iam_auth(server).token()
    texts.append(str(caught.value))
    assert token == state.token(1)
    for text in texts:
        for secret in (VECTOR_SK, "SK-secret", PASSWORD, token, "ready-token-value"):
            assert secret not in text, text
