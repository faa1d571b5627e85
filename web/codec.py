"""Temporal's codec server protocol on `printroom web`, so that the Temporal Web UI and the `temporal` CLI can read
(and write) what printroom encrypts: POST `{"payloads": [...]}` to /codec/decode or /codec/encode, answered in the
same shape. Only for the Web UI's origin (`temporal.ui_url`) or clients that send no Origin (the CLI), and only with
the bearer token, or behind a reverse proxy that authenticates every request (`web.codec_auth = "proxy"`): then
each request must carry the proxy's secret header, unless `printroom web` listens on loopback only (the proxy on
the same machine), so that nobody reaches /codec around the proxy."""

from __future__ import annotations

import hmac
import json
import logging
from urllib.parse import urlsplit

from google.protobuf.json_format import MessageToDict, ParseDict, ParseError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.api.common.v1 import Payloads

from printroom.codec import PayloadNotDecrypted
from printroom.settings import Settings

log = logging.getLogger("printroom.web")

ALLOWED_HEADERS = "Authorization, Content-Type, X-Namespace"
# Set by the reverse proxy (over whatever the client sent) in front of /codec, with web.codec_proxy_secret_file's secret.
PROXY_HEADER = "X-Printroom-Codec-Proxy"


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def origin_of(url: str | None) -> str | None:
    """`https://temporal.example.org/ui/` -> `https://temporal.example.org`, as a browser's Origin header reads."""
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class CodecServer:
    """Reads the keys and the token when built: a bad file stops `printroom web` at start, naming it."""

    def __init__(self, settings: Settings) -> None:
        self.codec = settings.temporal.codec()
        self.origin = origin_of(settings.temporal.ui_url)
        self.behind_proxy = settings.web.codec_auth == "proxy"
        self.token = None if self.behind_proxy else settings.web.codec_bearer()
        # Checked here too: settings built with model_copy skip the validators (a non-loopback host raises).
        self.proxy_secret = settings.web.codec_proxy_secret() if self.behind_proxy else None
        self.max_bytes = settings.web.codec_max_mb * 1024 * 1024

    @property
    def state(self) -> str:
        """One line for the start-up log: whether the codec server answers, and to whom."""
        if self.codec is None:
            return "off (no temporal.encryption_key_file)"
        if not self.behind_proxy and self.token is None:
            return "refusing every request: set web.codec_token_file (or PRINTROOM_WEB__CODEC_TOKEN), or web.codec_auth = 'proxy'"
        who = "requests with the bearer token"
        if self.behind_proxy:
            who = f"the reverse proxy's authenticated users ({f'the {PROXY_HEADER} header' if self.proxy_secret else 'loopback only'})"
        return f"on at /codec for {who}, from {self.origin or 'no browser (temporal.ui_url unset)'}, keys {', '.join(self.codec.keys.ids)}"

    def routes(self) -> list[Route]:
        return [
            Route("/codec/encode", self.encode, methods=["POST", "OPTIONS"]),
            Route("/codec/decode", self.decode, methods=["POST", "OPTIONS"]),
        ]

    async def encode(self, request: Request) -> Response:
        return await self._answer(request, decrypt=False)

    async def decode(self, request: Request) -> Response:
        return await self._answer(request, decrypt=True)

    async def _answer(self, request: Request, *, decrypt: bool) -> Response:
        origin = request.headers.get("origin")
        try:
            if origin is not None and origin != self.origin:
                raise _Refused(403, f"origin {origin} may not use this codec server; only the Temporal Web UI's, "
                                    f"{self.origin or 'none: set temporal.ui_url'}")  # fmt: skip
            if request.method == "OPTIONS":  # the browser's preflight: no credentials in it, by design
                return Response(status_code=204, headers=self._cors(origin))
            self._authorised(request)
            payloads = await self._payloads(request)
            codec = self.codec
            assert codec is not None  # _authorised refuses when encryption is off
            result = await (codec.decode if decrypt else codec.encode)(payloads.payloads)
        except _Refused as refused:
            log.warning("codec server: %s %s refused (%d): %s", request.method, request.url.path, refused.status, refused)
            headers = self._cors(origin) if origin == self.origin else {}
            if refused.status == 401:
                headers["WWW-Authenticate"] = 'Bearer realm="printroom codec"'
            return self._json({"error": str(refused)}, refused.status, headers)
        except PayloadNotDecrypted as error:
            log.warning("codec server: %s", error)
            return self._json({"error": str(error)}, 422, self._cors(origin))
        body = MessageToDict(Payloads(payloads=result), preserving_proto_field_name=True)
        return self._json({"payloads": body.get("payloads", [])}, 200, self._cors(origin))

    def _authorised(self, request: Request) -> None:
        if self.codec is None:
            raise _Refused(404, "encryption is off here (temporal.encryption_key_file is not set): there is nothing to decode")
        if self.behind_proxy:
            given = request.headers.get(PROXY_HEADER, "").strip().encode()
            if self.proxy_secret is not None and not hmac.compare_digest(given, self.proxy_secret):
                raise _Refused(403, f"a codec request must come through the reverse proxy, which sends the header {PROXY_HEADER} "
                                    "with web.codec_proxy_secret_file's secret")  # fmt: skip
            return
        if self.token is None:
            raise _Refused(403, "the codec server has no token: set web.codec_token_file (or PRINTROOM_WEB__CODEC_TOKEN), "
                                "or web.codec_auth = 'proxy' behind an authenticating reverse proxy")  # fmt: skip
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            raise _Refused(401, "a codec request needs the header Authorization: Bearer <web.codec_token>")

    async def _payloads(self, request: Request) -> Payloads:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise _Refused(413, f"the request is {int(declared)} bytes, over web.codec_max_mb ({self.max_bytes} bytes)")
        body = bytearray()
        try:
            async for chunk in request.stream():
                body += chunk
                if len(body) > self.max_bytes:
                    raise _Refused(413, f"the request is over web.codec_max_mb ({self.max_bytes} bytes)")
        except ClientDisconnect:
            raise _Refused(400, "the request was cut off") from None
        try:
            given = json.loads(body)
            if not isinstance(given, dict):
                raise ValueError('the body must be {"payloads": [...]}')
            return ParseDict(given, Payloads())  # no payloads at all (a query without arguments) is `{}`
        except (ValueError, ParseError) as error:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise _Refused(400, f"not a codec request: {error}") from None

    def _cors(self, origin: str | None) -> dict[str, str]:
        if origin is None:
            return {}
        headers = {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": ALLOWED_HEADERS,
            "Access-Control-Max-Age": "600",
            "Vary": "Origin",
        }
        if self.behind_proxy:  # the proxy's session cookie travels with the Web UI's request (codec includeCredentials)
            headers["Access-Control-Allow-Credentials"] = "true"
        return headers

    @staticmethod
    def _json(content: object, status: int, headers: dict[str, str]) -> Response:
        headers = {**headers, "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
        return JSONResponse(content, status_code=status, headers=headers)
