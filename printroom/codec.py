"""Payload encryption (AES-256-GCM): what printroom writes into Temporal (orders, drafts, queries' answers) is
encrypted in the client and the worker, so the Temporal service and its database only ever hold ciphertext.

Keys form a ring: each has an id, carried in the encrypted payload's metadata; one encrypts (the last one given,
unless `encrypt_with` names another: a new key is rolled out decrypt-only first), all of them decrypt. A payload
that is not encrypted passes through, so orders started before encryption was turned on keep running."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
import re
import secrets
import stat
from collections.abc import Sequence
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter, DefaultFailureConverter, DefaultFailureConverterWithEncodedAttributes, PayloadCodec

# The names Temporal's own encryption samples use: a codec server or CLI of theirs recognises these payloads.
ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
_KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
NEW_KEY_HINT = "make one with `printroom keys new`"


class KeyFileError(ValueError):
    """Keys that cannot be used (a file's mode, a key's length, a malformed line); the message names which."""


class PayloadNotDecrypted(Exception):
    """An encrypted payload this key ring cannot decrypt: its key is missing, or the payload was cut or altered.
    Never decoded to anything: the message names the key id and what to do."""


@dataclasses.dataclass(frozen=True)
class KeyRing:
    """Keys by id, oldest first: every one decrypts; `encrypt_with` encrypts (None: the last one). A key is added
    decrypt-only first (every host reads it before any host writes with it), then named in `encrypt_with`."""

    keys: dict[str, bytes] = dataclasses.field(repr=False)  # never in a log line or a traceback's locals
    encrypt_with: str | None = None

    def __post_init__(self) -> None:
        """Checked however the ring is built (not only from a file): a short key or a bad id is refused here."""
        if not self.keys:
            raise KeyFileError(f"no encryption key given; {NEW_KEY_HINT}")
        for key_id, key in self.keys.items():
            if not isinstance(key_id, str) or not _KEY_ID.match(key_id):
                raise KeyFileError(f"key id {str(key_id)[:80]!r} is not 1-64 letters, digits, '.', '_', '-'; {NEW_KEY_HINT}")
            if not isinstance(key, bytes) or len(key) != KEY_BYTES:
                size = f"{len(key)} bytes" if isinstance(key, bytes) else f"a {type(key).__name__}, not bytes"
                raise KeyFileError(f"key {key_id!r} is {size}; AES-256 needs {KEY_BYTES}; {NEW_KEY_HINT}")
        if self.encrypt_with is not None and self.encrypt_with not in self.keys:
            raise KeyFileError(
                f"temporal.encrypt_with names key {self.encrypt_with[:80]!r}, which is not among the keys given "
                f"({', '.join(self.keys)}); name one of them, or add that key to temporal.encryption_key_file first"
            )

    @property
    def newest(self) -> str:
        """The last key given."""
        return next(reversed(self.keys))

    @property
    def encrypting(self) -> str:
        """The id of the key new payloads are encrypted with."""
        return self.encrypt_with if self.encrypt_with is not None else self.newest

    @property
    def ids(self) -> list[str]:
        return list(self.keys)

    @classmethod
    def parse(cls, text: str, where: str, encrypt_with: str | None = None) -> KeyRing:
        """`id:base64` entries, one a line (or separated by `;` in an environment variable); `#` starts a comment
        line. `where` names the source in messages (never the keys themselves)."""
        keys: dict[str, bytes] = {}
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip().startswith("#"):
                continue
            for entry in re.split(r"[\s;]+", line.strip()):
                if entry:
                    key_id, key = _entry(entry, f"{where}, line {number}")
                    if key_id in keys:
                        raise KeyFileError(f"{where}, line {number}: key id {key_id!r} is given twice; each key needs its own id")
                    keys[key_id] = key
        if not keys:
            raise KeyFileError(f"{where} holds no key; {NEW_KEY_HINT}")
        return cls(keys, encrypt_with)

    @classmethod
    def read(cls, path: Path, encrypt_with: str | None = None) -> KeyRing:
        """The key file, refused unless only its owner may read it (mode 600 or 400)."""
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise KeyFileError(f"encryption key file {path} does not exist; {NEW_KEY_HINT} --file {path}") from None
        except (OSError, UnicodeDecodeError) as error:
            raise KeyFileError(f"encryption key file {path} cannot be read: {error}") from None
        if mode & 0o077:
            raise KeyFileError(f"encryption key file {path} has mode {mode:03o}: others may read it; run `chmod 600 {path}`")
        return cls.parse(text, f"encryption key file {path}", encrypt_with)


def _entry(entry: str, where: str) -> tuple[str, bytes]:
    key_id, colon, encoded = entry.partition(":")
    if not colon or not _KEY_ID.match(key_id):
        raise KeyFileError(f"{where}: an entry must read ID:BASE64 (ID of letters, digits, '.', '_', '-'); {NEW_KEY_HINT}")
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise KeyFileError(f"{where}: key {key_id!r} is not valid base64; {NEW_KEY_HINT}") from None
    if len(key) != KEY_BYTES:
        raise KeyFileError(f"{where}: key {key_id!r} is {len(key)} bytes; AES-256 needs {KEY_BYTES}; {NEW_KEY_HINT}")
    return key_id, key


def new_key_entry(taken: Sequence[str] = (), now: datetime | None = None) -> str:
    """A fresh key as a key file's line: `<date>-<random>:<base64 of 32 random bytes>`."""
    day = (now or datetime.now(timezone.utc)).strftime("%Y%m%d")
    while (key_id := f"{day}-{secrets.token_hex(3)}") in taken:
        pass
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode('ascii')}"


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM over each whole payload (its metadata too: the encoding and type stay hidden). The key id is
    authenticated with it, so a payload relabelled with another id is refused. With `encrypt=False` (encryption
    turned off, keys kept) it only decrypts: new payloads go in clear, encrypted ones stay readable."""

    def __init__(self, keys: KeyRing, *, encrypt: bool = True) -> None:
        self.keys, self.encrypting = keys, encrypt

    @cached_property
    def _ciphers(self) -> dict[str, AESGCM]:
        return {key_id: AESGCM(key) for key_id, key in self.keys.keys.items()}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads] if self.encrypting else list(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        key_id = self.keys.encrypting
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[key_id].encrypt(nonce, payload.SerializeToString(), key_id.encode("ascii"))
        return Payload(metadata={"encoding": ENCODING, KEY_ID: key_id.encode("ascii")}, data=nonce + sealed)

    def decrypt(self, payload: Payload) -> Payload:
        """An encrypted payload decrypted; any other passes through as it is (written before encryption was on)."""
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID, b"")[:80].decode("ascii", "replace")  # ids are 64 at most: quoted, bounded
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PayloadNotDecrypted(
                f"a payload is encrypted with key {key_id!r}, which is not among the keys given "
                f"({', '.join(self.keys.ids)}); add key {key_id!r} back to temporal.encryption_key_file "
                "(or PRINTROOM_TEMPORAL__ENCRYPTION_KEY) and restart"
            )
        if len(payload.data) < NONCE_BYTES + TAG_BYTES:
            raise PayloadNotDecrypted(f"a payload encrypted with key {key_id!r} is truncated ({len(payload.data)} bytes); it cannot be read")
        try:
            plain = cipher.decrypt(payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:], key_id.encode("ascii"))
        except InvalidTag:
            raise PayloadNotDecrypted(
                f"a payload labelled with key {key_id!r} does not decrypt with it: it was altered or cut, or key "
                f"{key_id!r} is not the key it was written with (a key id reused for a new key?)"
            ) from None
        return Payload.FromString(plain)


class _Chain(PayloadCodec):
    """The application's own codec (compression, say) first, then encryption; undone in the reverse order."""

    def __init__(self, inner: PayloadCodec, outer: EncryptionCodec) -> None:
        self.inner, self.outer = inner, outer

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return await self.outer.encode(await self.inner.encode(payloads))

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return await self.inner.decode(await self.outer.decode(payloads))


def encrypting(converter: DataConverter, ours: EncryptionCodec | None) -> DataConverter:
    """`converter` with printroom's codec (None: as it is, encryption off). While it encrypts, failure messages and
    stack traces are encrypted too (they can quote an address). An application's codec stays and runs first."""
    if ours is None:
        return converter
    existing = converter.payload_codec
    if isinstance(existing, _Chain):
        existing = existing.inner
    codec: PayloadCodec = ours if existing is None or isinstance(existing, EncryptionCodec) else _Chain(existing, ours)
    failures = converter.failure_converter_class
    if failures is DefaultFailureConverter and ours.encrypting:  # an application's own failure converter is its business
        failures = DefaultFailureConverterWithEncodedAttributes
    return dataclasses.replace(converter, payload_codec=codec, failure_converter_class=failures)


def encrypts(converter: DataConverter) -> bool:
    """Whether `converter` encrypts with printroom's codec."""
    codec = converter.payload_codec
    return isinstance(codec, EncryptionCodec) or (isinstance(codec, _Chain) and isinstance(codec.outer, EncryptionCodec))
