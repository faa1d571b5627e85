"""The codec server of `printroom web`, as the Temporal Web UI and CLI call it over HTTP (Temporal's codec server
protocol): payloads decoded and encoded for the Web UI's origin with the token; refused without the token, from
another origin, over the size limit, malformed or tampered, each with what was wrong."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import urllib.parse
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st
from pydantic import SecretStr
from starlette.applications import Starlette

from printroom.settings import Settings, SettingsError, TemporalSettings, resolve_settings
from printroom.web.codec import CodecServer
from tests.web_helpers import web_running, with_web

UI_ORIGIN = "http://127.0.0.1:8233"
TOKEN = "codec-token-for-the-tests-0123456789abcdef"
KEYS = f"k1:{base64.b64encode(b'1' * 32).decode()}\nk2:{base64.b64encode(b'2' * 32).decode()}"
ALLOWED = {"Origin": UI_ORIGIN, "X_Namespace": "default", "Authorization": f"Bearer {TOKEN}"}
ORDER = {"customer": {"name": "Marie Curie", "email": "marie@example.org"}}
PROXY_SECRET = "proxy-secret-for-the-tests-0123456789abcdef"


@dataclass
class Answer:
    status: int
    headers: Message
    body: Any


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def json_payload(value: Any) -> dict[str, Any]:
    """A payload as the Web UI sends one: metadata and data base64 (protobuf's JSON form)."""
    return {"metadata": {"encoding": b64(b"json/plain")}, "data": b64(json.dumps(value).encode())}


async def call(url: str, body: Any = None, *, method: str = "POST", **headers: str) -> Answer:
    def send() -> Answer:
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        for name, value in headers.items():
            request.add_header(name.replace("_", "-"), value)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw = response.read()
                return Answer(response.status, response.headers, json.loads(raw) if raw else None)
        except urllib.error.HTTPError as error:
            raw = error.read()
            return Answer(error.code, error.headers, json.loads(raw) if raw.startswith(b"{") else raw.decode())

    return await asyncio.to_thread(send)


async def announced(url: str, length: int) -> http.client.HTTPResponse:
    """A request that announces `length` bytes: refused on its headers, before its body is read."""

    def send() -> http.client.HTTPResponse:
        parts = urllib.parse.urlsplit(url)
        connection = http.client.HTTPConnection(parts.netloc, timeout=30)
        connection.putrequest("POST", parts.path)
        headers = {"Origin": UI_ORIGIN, "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json", "Content-Length": str(length)}
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        return connection.getresponse()

    return await asyncio.to_thread(send)


def codec_settings(settings: Settings, **web: Any) -> Settings:
    settings = with_web(settings)
    temporal = TemporalSettings(encryption_key=KEYS, ui_url=f"{UI_ORIGIN}/namespaces/default")
    return settings.model_copy(update={"temporal": temporal, "web": settings.web.model_copy(update={"codec_token": SecretStr(TOKEN), **web})})


@pytest.fixture
async def codec(settings: Settings) -> AsyncIterator[str]:
    async with web_running(codec_settings(settings), None) as base:
        yield f"{base}/codec"




async def test_the_web_ui_encodes_and_decodes_with_the_token_from_its_origin(codec):
    preflight = await call(f"{codec}/decode", method="OPTIONS", Origin=UI_ORIGIN, Access_Control_Request_Method="POST",
                           Access_Control_Request_Headers="authorization,content-type,x-namespace")  # fmt: skip
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == UI_ORIGIN
    assert {"authorization", "content-type", "x-namespace"} <= {h.strip().lower() for h in preflight.headers["Access-Control-Allow-Headers"].split(",")}
    encoded = await call(f"{codec}/encode", {"payloads": [json_payload(ORDER)]}, **ALLOWED)
    assert encoded.status == 200 and encoded.headers["Access-Control-Allow-Origin"] == UI_ORIGIN
    [sealed] = encoded.body["payloads"]
    assert base64.b64decode(sealed["metadata"]["encoding"]) == b"binary/encrypted"
    assert base64.b64decode(sealed["metadata"]["encryption-key-id"]) == b"k2"  # the newest key
    assert b"Marie" not in base64.b64decode(sealed["data"])
    decoded = await call(f"{codec}/decode", {"payloads": [sealed, json_payload("in clear")]}, **ALLOWED)
    assert decoded.status == 200
    assert [json.loads(base64.b64decode(p["data"])) for p in decoded.body["payloads"]] == [ORDER, "in clear"]
    # The `temporal` CLI sends no Origin: the token is enough.
    cli = await call(f"{codec}/decode", {"payloads": [sealed]}, Authorization=f"Bearer {TOKEN}")
    assert cli.status == 200 and "Access-Control-Allow-Origin" not in cli.headers


async def test_a_request_without_the_token_or_with_a_wrong_one_is_refused(codec):
    sealed = (await call(f"{codec}/encode", {"payloads": [json_payload(ORDER)]}, **ALLOWED)).body["payloads"]
    for authorization in (None, "Bearer wrong-token", f"Basic {TOKEN}", TOKEN):
        headers = {"Origin": UI_ORIGIN} | ({"Authorization": authorization} if authorization else {})
        refused = await call(f"{codec}/decode", {"payloads": sealed}, **headers)
        assert refused.status == 401, authorization
        assert refused.body == {"error": "a codec request needs the header Authorization: Bearer <web.codec_token>"}
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert "Marie" not in json.dumps(refused.body)


async def test_a_request_from_another_origin_is_refused_and_its_page_may_not_read_the_answer(codec):
    sealed = (await call(f"{codec}/encode", {"payloads": [json_payload(ORDER)]}, **ALLOWED)).body["payloads"]
    for origin in ("https://evil.example", "http://127.0.0.1:8234", "null"):
        preflight = await call(f"{codec}/decode", method="OPTIONS", Origin=origin, Access_Control_Request_Method="POST")
        assert preflight.status == 403 and "Access-Control-Allow-Origin" not in preflight.headers
        refused = await call(f"{codec}/decode", {"payloads": sealed}, **{**ALLOWED, "Origin": origin})
        assert refused.status == 403 and "Access-Control-Allow-Origin" not in refused.headers
        assert refused.body == {"error": f"origin {origin} may not use this codec server; only the Temporal Web UI's, {UI_ORIGIN}"}


async def test_a_request_over_the_size_limit_malformed_or_tampered_is_refused_naming_why(settings):
    async with web_running(codec_settings(settings, codec_max_mb=1), None) as base:
        codec = f"{base}/codec"
        over = await announced(f"{codec}/encode", 1024 * 1024 + 1)
        assert over.status == 413 and json.loads(over.read()) == {"error": "the request is 1048577 bytes, over web.codec_max_mb (1048576 bytes)"}
        for body, why in ((b"{not json", "not a codec request"), ([{"payloads": []}], 'the body must be {"payloads": [...]}'), ({"payload": []}, 'no field named "payload"'),
                          ({"payloads": ["a string"]}, "not a codec request"), ({"payloads": [{"colour": "red"}]}, "colour")):  # fmt: skip
            malformed = await call(f"{codec}/decode", body, **ALLOWED)
            assert malformed.status == 400 and why in malformed.body["error"], body
        [sealed] = (await call(f"{codec}/encode", {"payloads": [json_payload(ORDER)]}, **ALLOWED)).body["payloads"]
        data = bytearray(base64.b64decode(sealed["data"]))
        data[20] ^= 1
        tampered = await call(f"{codec}/decode", {"payloads": [{**sealed, "data": b64(bytes(data))}]}, **ALLOWED)
        assert tampered.status == 422
        assert tampered.body == {"error": "a payload labelled with key 'k2' does not decrypt with it: it was altered or cut, "
                                          "or key 'k2' is not the key it was written with (a key id reused for a new key?)"}  # fmt: skip
        nothing = await call(f"{codec}/decode", {}, **ALLOWED)  # a query without arguments, as the CLI sends it
        assert nothing.status == 200 and nothing.body == {"payloads": []}
        unknown = {**sealed, "metadata": {**sealed["metadata"], "encryption-key-id": b64(b"k0")}}
        missing = await call(f"{codec}/decode", {"payloads": [unknown]}, **ALLOWED)
        assert missing.status == 422 and "encrypted with key 'k0', which is not among the keys given (k1, k2)" in missing.body["error"]


async def test_behind_an_authenticating_proxy_no_token_is_asked_and_the_proxys_cookie_may_travel(settings):
    proxied = codec_settings(settings, codec_auth="proxy", codec_token=None)
    async with web_running(proxied, None) as base:
        preflight = await call(f"{base}/codec/decode", method="OPTIONS", Origin=UI_ORIGIN, Access_Control_Request_Method="POST")
        assert preflight.headers["Access-Control-Allow-Credentials"] == "true"
        encoded = await call(f"{base}/codec/encode", {"payloads": [json_payload(ORDER)]}, Origin=UI_ORIGIN)
        assert encoded.status == 200 and encoded.headers["Access-Control-Allow-Credentials"] == "true"


def secret_file(path: Path, content: str, mode: int = 0o600) -> Path:
    path.write_text(content + "\n", encoding="utf-8")
    path.chmod(mode)
    return path


async def test_behind_a_proxy_on_another_interface_only_requests_with_the_proxys_secret_header_are_answered(settings, tmp_path):
    """Listening beyond loopback, anyone reaching printroom web could go around the proxy: its secret is required."""
    everywhere = {"codec_auth": "proxy", "codec_token": None, "host": "0.0.0.0"}
    with pytest.raises(ValueError, match=r"codec_auth = 'proxy' while printroom web listens on 0.0.0.0 \(not loopback\): anyone .*set codec_proxy_secret_file"):
        CodecServer(codec_settings(settings, **everywhere))  # as built in tests and `printroom dev`: model_copy, no validators
    with pytest.raises(SettingsError, match=r"web: .*codec_auth = 'proxy' while printroom web listens on 0.0.0.0 \(not loopback\)"):
        resolve_settings({"web": {"codec_auth": "proxy", "host": "0.0.0.0"}})
    shared = secret_file(tmp_path / "proxy-secret", PROXY_SECRET, 0o640)
    with pytest.raises(SettingsError, match=rf"codec_proxy_secret_file {shared} has mode 640: others may read it, and it decrypts like the key"):
        resolve_settings({"web": {"codec_auth": "proxy", "host": "0.0.0.0", "codec_proxy_secret_file": str(shared)}})
    short = secret_file(tmp_path / "short", "too-short")
    with pytest.raises(SettingsError, match=r"codec_proxy_secret_file .* holds 9 bytes; it must hold at least 32"):
        resolve_settings({"web": {"codec_auth": "proxy", "host": "0.0.0.0", "codec_proxy_secret_file": str(short)}})
    private = secret_file(tmp_path / "proxy-secret", PROXY_SECRET)
    assert resolve_settings({"web": {"codec_auth": "proxy", "host": "0.0.0.0", "codec_proxy_secret_file": str(private)}}).web.codec_proxy_secret_file == private
    # Served on loopback here, the secret set: it is required all the same.
    async with web_running(codec_settings(settings, codec_auth="proxy", codec_token=None, codec_proxy_secret_file=private), None) as base:
        body = {"payloads": [json_payload(ORDER)]}
        around = await call(f"{base}/codec/encode", body, Origin=UI_ORIGIN)
        wrong = await call(f"{base}/codec/encode", body, Origin=UI_ORIGIN, X_Printroom_Codec_Proxy=PROXY_SECRET[:-1] + "x")
        for refused in (around, wrong):
            assert refused.status == 403 and "must come through the reverse proxy, which sends the header X-Printroom-Codec-Proxy" in refused.body["error"]
        through = await call(f"{base}/codec/encode", body, Origin=UI_ORIGIN, X_Printroom_Codec_Proxy=PROXY_SECRET)
        assert through.status == 200 and through.body["payloads"][0]["metadata"]["encoding"] == b64(b"binary/encrypted")


def test_a_codec_token_file_others_may_read_is_refused_like_the_key_file(settings, tmp_path):
    token = secret_file(tmp_path / "codec-token", TOKEN, 0o644)
    with pytest.raises(SettingsError, match=rf"codec_token_file {token} has mode 644: others may read it, and it decrypts like the key; run `chmod 600 {token}`"):
        resolve_settings({"web": {"codec_token_file": str(token)}})
    token.chmod(0o640)
    with pytest.raises(ValueError, match=r"has mode 640"):  # read again at start: a file loosened since is refused too
        CodecServer(codec_settings(settings, codec_token=None, codec_token_file=token))
    token.chmod(0o600)
    assert CodecServer(codec_settings(settings, codec_token=None, codec_token_file=token)).token == TOKEN


async def test_without_keys_or_without_a_token_the_codec_server_says_which_setting_is_missing(settings):
    no_token = codec_settings(settings, codec_token=None)
    async with web_running(no_token, None) as base:
        refused = await call(f"{base}/codec/decode", {"payloads": []}, Origin=UI_ORIGIN)
        assert refused.status == 403 and "the codec server has no token: set web.codec_token_file" in refused.body["error"]
    async with web_running(with_web(settings), None) as base:
        off = await call(f"{base}/codec/decode", {"payloads": []}, Authorization=f"Bearer {TOKEN}")
        assert off.status == 404 and "encryption is off here (temporal.encryption_key_file is not set)" in off.body["error"]


# Any body, as a hostile client may send one: answered with the payloads or a reason, never a crash (500).
B64 = st.builds(lambda raw: b64(raw), st.binary(max_size=64))
PAYLOAD = st.fixed_dictionaries(
    {},
    optional={
        "metadata": st.dictionaries(st.sampled_from(["encoding", "encryption-key-id", "x"]), st.one_of(B64, st.just(b64(b"binary/encrypted")), st.just(b64(b"k1")))),
        "data": st.one_of(B64, st.text(max_size=20)),
    },
)
JSON_VALUE = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10), lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=10)
BODY = st.one_of(
    st.binary(max_size=200),
    st.builds(lambda v: json.dumps(v).encode(), JSON_VALUE),
    st.builds(lambda ps: json.dumps({"payloads": ps}).encode(), st.lists(st.one_of(PAYLOAD, JSON_VALUE), max_size=4)),
)


@given(body=BODY, decrypt=st.booleans())
@hypothesis_settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_body_is_answered_with_payloads_or_a_reason_never_a_crash(settings, body, decrypt):
    app = Starlette(routes=CodecServer(codec_settings(settings)).routes())
    status, answer = asyncio.run(asgi_post(app, "/codec/decode" if decrypt else "/codec/encode", body))
    assert status in (200, 400, 422), (status, answer)
    parsed = json.loads(answer)
    assert set(parsed) == ({"payloads"} if status == 200 else {"error"}) and "Traceback" not in answer.decode()


async def test_a_streamed_body_over_the_size_limit_is_refused_without_reading_it_all(settings):
    """Chunked, no Content-Length: nothing declares the size, the server counts what it reads and stops there."""
    app = Starlette(routes=CodecServer(codec_settings(settings, codec_max_mb=1)).routes())
    chunks = [b"x" * 65536] * 20  # 1.25 MiB in 64 KiB chunks
    status, answer = await asgi_post(app, "/codec/decode", chunks)
    assert status == 413 and json.loads(answer) == {"error": "the request is over web.codec_max_mb (1048576 bytes)"}
    assert chunks == [b"x" * 65536] * 3  # the 17th chunk was the one over the limit; the rest were never read


async def asgi_post(app: Starlette, path: str, body: bytes | list[bytes]) -> tuple[int, bytes]:
    """One POST straight to the ASGI app, with the token and the Web UI's origin; a list of chunks is streamed
    (no Content-Length), and what the app did not read stays in it."""
    headers = [(b"authorization", f"Bearer {TOKEN}".encode()), (b"origin", UI_ORIGIN.encode()), (b"content-type", b"application/json")]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8377)}  # fmt: skip
    chunks = body if isinstance(body, list) else [body]

    async def receive() -> dict[str, Any]:
        if not chunks:
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": chunks.pop(0), "more_body": bool(chunks)}

    status, answer = 0, []

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            answer.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(answer)
