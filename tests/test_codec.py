"""Payload encryption without a server: what the codec writes, what it refuses to read, the key file and its
settings, `printroom keys new`, and how printroom's clients and workers take the codec."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes, PayloadCodec
from temporalio.worker import Worker

from printroom import PrintroomPlugin
from printroom.cli.dev import banner, dev_settings, dev_web, temporal_command
from printroom.codec import ENCODING, KEY_ID, EncryptionCodec, KeyFileError, KeyRing, PayloadNotDecrypted, encrypting, encrypts
from printroom.settings import Settings, SettingsError, TemporalSettings, load_settings, resolve_settings
from printroom.worker.plugin import with_pydantic
from tests.conftest import run_printroom

CUSTOMER = b'{"customer": {"name": "Marie Curie", "email": "marie@example.org"}}'


def key(fill: bytes) -> str:
    return base64.b64encode(fill * 32).decode()


def ring(*ids: str) -> KeyRing:
    return KeyRing.parse("\n".join(f"{i}:{key(i[-1].encode())}" for i in ids), "test keys")


def order_payload() -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=CUSTOMER)


async def encrypted(keys: KeyRing, payload: Payload | None = None) -> Payload:
    return (await EncryptionCodec(keys).encode([payload or order_payload()]))[0]


async def test_the_newest_key_encrypts_every_key_decrypts_and_nothing_shows_through():
    old = await encrypted(ring("k1"))
    new = await encrypted(ring("k1", "k2"))
    assert new.metadata["encoding"] == ENCODING and new.metadata[KEY_ID] == b"k2" and old.metadata[KEY_ID] == b"k1"
    for sealed in (old, new):
        raw = sealed.SerializeToString()
        assert b"Marie" not in raw and b"marie@example.org" not in raw and b"json/plain" not in raw
    assert await EncryptionCodec(ring("k1", "k2")).decode([old, new]) == [order_payload(), order_payload()]
    # The same value twice is two different ciphertexts (a fresh nonce each time).
    assert (await encrypted(ring("k1"))).data != old.data


async def test_payloads_written_before_encryption_was_on_pass_through_and_encryption_can_be_turned_off():
    plain = order_payload()
    assert await EncryptionCodec(ring("k1")).decode([plain]) == [plain]
    sealed = await encrypted(ring("k1"))
    off = EncryptionCodec(ring("k1"), encrypt=False)
    assert await off.encode([plain]) == [plain]  # turned off: new payloads go in clear ...
    assert await off.decode([sealed]) == [plain]  # ... and what was encrypted stays readable while its key is kept


async def test_a_payload_whose_key_is_missing_is_refused_naming_the_key():
    sealed = await encrypted(ring("k1"))
    with pytest.raises(PayloadNotDecrypted, match=r"encrypted with key 'k1', which is not among the keys given \(k2\); add key 'k1' back"):
        await EncryptionCodec(ring("k2")).decode([sealed])


@pytest.mark.parametrize(
    "spoil, expected",
    [
        (lambda p: Payload(metadata=p.metadata, data=p.data[:20]), r"encrypted with key 'k1' is truncated \(20 bytes\)"),
        (lambda p: Payload(metadata=p.metadata, data=p.data[:-1]), r"labelled with key 'k1' does not decrypt with it: it was altered or cut"),
        (lambda p: Payload(metadata=p.metadata, data=p.data[:30] + bytes([p.data[30] ^ 1]) + p.data[31:]), r"labelled with key 'k1' does not decrypt"),
        (lambda p: Payload(metadata={**p.metadata, KEY_ID: b"k2"}, data=p.data), r"labelled with key 'k2' does not decrypt"),
    ],
    ids=["truncated", "cut by one byte", "one bit flipped", "relabelled with another key"],
)
async def test_a_truncated_or_tampered_ciphertext_is_refused_never_decoded_to_garbage(spoil, expected):
    sealed = await encrypted(ring("k1"))
    # The same key bytes under both ids: a relabelled payload is refused by the key id's binding alone.
    both = KeyRing.parse(f"k1:{key(b'1')}\nk2:{key(b'1')}", "test keys")
    with pytest.raises(PayloadNotDecrypted, match=expected):
        await EncryptionCodec(both).decode([spoil(sealed)])


async def test_a_wrong_key_under_the_right_id_is_refused():
    sealed = await encrypted(ring("k1"))
    impostor = KeyRing.parse(f"k1:{key(b'X')}", "test keys")
    with pytest.raises(PayloadNotDecrypted, match=r"key 'k1' is not the key it was written with"):
        await EncryptionCodec(impostor).decode([sealed])


async def test_encrypt_with_names_the_key_that_encrypts_so_a_new_key_is_rolled_out_decrypt_only_first():
    """Host by host: k2 reaches every host while k1 still encrypts, so a host without k2 yet reads all."""
    staged = KeyRing.parse(f"k1:{key(b'1')}\nk2:{key(b'2')}", "test keys", encrypt_with="k1")
    sealed = await encrypted(staged)
    assert staged.encrypting == "k1" and sealed.metadata[KEY_ID] == b"k1"
    assert await EncryptionCodec(ring("k1")).decode([sealed]) == [order_payload()]  # a host not yet given k2
    assert (await encrypted(KeyRing.parse(f"k1:{key(b'1')}\nk2:{key(b'2')}", "test keys"))).metadata[KEY_ID] == b"k2"
    keys = f"k1:{key(b'1')}; k2:{key(b'2')}"
    codec = TemporalSettings(encryption_key=keys, encrypt_with="k1").codec()
    assert codec is not None and codec.keys.encrypting == "k1"
    with pytest.raises(SettingsError, match=r"temporal: .*encrypt_with names key 'k3', which is not among the keys given \(k1, k2\)"):
        resolve_settings({"temporal": {"encryption_key": keys, "encrypt_with": "k3"}})
    with pytest.raises(SettingsError, match=r"temporal: .*encrypt_with names key 'k1', but no key is given"):
        resolve_settings({"temporal": {"encrypt_with": "k1"}})


def test_a_key_ring_built_directly_is_checked_like_a_key_file_and_never_shows_its_keys():
    with pytest.raises(KeyFileError, match=r"key 'k1' is 16 bytes; AES-256 needs 32"):
        KeyRing({"k1": b"x" * 16})
    with pytest.raises(KeyFileError, match=r"key id 'k 1' is not 1-64 letters"):
        KeyRing({"k 1": b"x" * 32})
    with pytest.raises(KeyFileError, match=r"key 'k1' is a str, not bytes"):
        KeyRing({"k1": "x" * 32})  # type: ignore[dict-item]
    secret = b"S3cr3t-key-bytes-never-printed!!"
    shown = repr(KeyRing({"k1": secret}))
    assert repr(secret) not in shown and "S3cr3t" not in shown


def write_keys(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


@pytest.mark.parametrize(
    "text, mode, expected",
    [
        (f"k1:{base64.b64encode(b'x' * 16).decode()}\n", 0o600, r"line 1: key 'k1' is 16 bytes; AES-256 needs 32"),
        (f"k1:{key(b'1')}\n", 0o644, r"has mode 644: others may read it; run `chmod 600 "),
        (f"k1:{key(b'1')}\n", 0o640, r"has mode 640"),
        ("k1:not base64!\n", 0o600, r"line 1: key 'k1' is not valid base64"),
        (f"# keys\n{key(b'1')}\n", 0o600, r"line 2: an entry must read ID:BASE64"),
        (f"k1:{key(b'1')}\nk1:{key(b'2')}\n", 0o600, r"line 2: key id 'k1' is given twice"),
        ("# nothing yet\n\n", 0o600, r"holds no key; make one with `printroom keys new`"),
    ],
    ids=["16 bytes", "world-readable", "group-readable", "not base64", "no id", "id twice", "empty"],
)
def test_a_key_file_of_the_wrong_length_mode_or_form_is_refused_naming_it(tmp_path, text, mode, expected):
    path = write_keys(tmp_path / "keys", text, mode)
    with pytest.raises(KeyFileError, match=expected):
        KeyRing.read(path)
    # The same refusal stops every command at start, as a settings error naming the file; the key never shows.
    with pytest.raises(SettingsError, match=rf"temporal: .*encryption key file {re.escape(str(path))}") as refused:
        resolve_settings({"temporal": {"encryption_key_file": str(path)}})
    assert key(b"1") not in str(refused.value)


def test_keys_are_refused_in_the_settings_file_and_taken_from_the_environment(tmp_path, monkeypatch):
    settings_file = tmp_path / "printroom.toml"
    settings_file.write_text(f'[temporal]\nencryption_key = "k1:{key(b"1")}"\n', encoding="utf-8")
    with pytest.raises(SettingsError, match="temporal.encryption_key must not be written in the file in clear; set PRINTROOM_TEMPORAL__ENCRYPTION_KEY or name a file in temporal.encryption_key_file"):
        load_settings(settings_file)
    settings_file.write_text('[web]\ncodec_token = "a-token-of-more-than-32-bytes-0123456789"\n', encoding="utf-8")
    with pytest.raises(SettingsError, match="web.codec_token must not be written in the file in clear; set PRINTROOM_WEB__CODEC_TOKEN"):
        load_settings(settings_file)
    settings_file.write_text("", encoding="utf-8")
    monkeypatch.setenv("PRINTROOM_TEMPORAL__ENCRYPTION_KEY", f"k1:{key(b'1')}; k2:{key(b'2')}")
    codec = load_settings(settings_file).temporal.codec()
    assert codec is not None and codec.keys.ids == ["k1", "k2"] and codec.keys.newest == "k2"
    monkeypatch.setenv("PRINTROOM_TEMPORAL__ENCRYPTION_KEY_FILE", str(write_keys(tmp_path / "keys", f"k3:{key(b'3')}\n")))
    with pytest.raises(SettingsError, match="encryption keys are given twice"):
        load_settings(settings_file)


def test_printroom_keys_new_writes_a_private_file_whose_newest_key_encrypts_and_settings_check_names_the_ids(tmp_path):
    keys = tmp_path / "keys"
    first = run_printroom("keys", "new", "--file", str(keys), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert oct(keys.stat().st_mode & 0o777) == "0o600"
    second = run_printroom("keys", "new", cwd=tmp_path, PRINTROOM_TEMPORAL__ENCRYPTION_KEY_FILE=str(keys))
    assert second.returncode == 0, second.stderr
    ring_now = KeyRing.read(keys)
    assert len(ring_now.ids) == 2 and f"key {ring_now.newest} added to {keys}" in second.stdout
    assert f"then set encrypt_with = {ring_now.newest!r}" in second.stdout  # the staged rollout, said where a key is made
    check = run_printroom("settings", "check", cwd=tmp_path, PRINTROOM_TEMPORAL__ENCRYPTION_KEY_FILE=str(keys))
    assert f"encryption: keys {ring_now.ids[0]}, {ring_now.ids[1]} ({ring_now.newest} encrypts)" in check.stdout
    for line in keys.read_text().splitlines():
        if not line.startswith("#"):
            assert line.partition(":")[2] not in check.stdout + second.stdout  # ids are shown, keys never
    keys.chmod(0o644)
    refused = run_printroom("keys", "new", "--file", str(keys), cwd=tmp_path)
    assert refused.returncode == 2 and f"encryption key file {keys} has mode 644" in refused.stderr
    assert len(keys.read_text().splitlines()) == 6  # untouched: the header's four lines and two keys
    nowhere = run_printroom("keys", "new", cwd=tmp_path)
    assert nowhere.returncode == 2 and "name the key file: --file" in nowhere.stderr


def test_make_run_gives_the_web_ui_its_codec_endpoint_and_prints_commands_that_encrypt(tmp_path):
    plain = Settings(dev={"data_dir": tmp_path})
    encrypted = plain.model_copy(update={"temporal": TemporalSettings(encryption_key=f"k1:{key(b'1')}")})
    assert "--ui-codec-endpoint" not in temporal_command(plain)
    command = temporal_command(encrypted)
    assert command[command.index("--ui-codec-endpoint") + 1] == "http://127.0.0.1:8377/codec"
    assert dev_web(encrypted).codec_auth == "proxy"  # the dev Web UI logs nobody in and sends no token
    printed = banner(encrypted, "127.0.0.1:7233", tmp_path / "outbox")
    start = next(line for line in printed.splitlines() if " workflow start " in line)
    assert "--codec-endpoint http://127.0.0.1:8377/codec" in start
    assert "--static-summary 'Order PO-1001'" in start and "Marie Curie" not in printed
    assert "Marie Curie" in banner(plain, "127.0.0.1:7233", tmp_path / "outbox")  # the name, while in clear


def test_make_run_keeps_encryption_turned_off_and_the_key_that_encrypts(tmp_path):
    """`printroom dev` points the worker at its own dev server; the encryption settings go with it unchanged."""
    keys = f"k1:{key(b'1')}\nk2:{key(b'2')}"
    staged = Settings(dev={"data_dir": tmp_path}, temporal=TemporalSettings(encryption_key=keys, encrypt_with="k1", address="far:7233"))
    dev = dev_settings(staged).temporal
    assert (dev.address, dev.namespace) == ("127.0.0.1:7233", "default")
    assert dev.encrypt_with == "k1" and dev.key_ring().encrypting == "k1"  # type: ignore[union-attr]  # k2 decrypt-only
    off = Settings(dev={"data_dir": tmp_path}, temporal=TemporalSettings(encryption_key=keys, encrypt=False))
    codec = dev_settings(off).temporal.codec()
    assert codec is not None and codec.encrypting is False  # turned off: new payloads in clear, the keys still read


class Compress(PayloadCodec):
    """An application's own codec: marks what it did, so the order of the two codecs shows."""

    async def encode(self, payloads):
        return [Payload(metadata={"encoding": b"app/marked"}, data=json.dumps(p.data.decode()).encode()) for p in payloads]

    async def decode(self, payloads):
        return [Payload(metadata={"encoding": b"json/plain"}, data=json.loads(p.data).encode()) if p.metadata["encoding"] == b"app/marked" else p for p in payloads]


async def test_the_converter_keeps_an_applications_codec_inside_the_encryption_and_encrypts_failure_messages():
    converter = encrypting(with_pydantic(DataConverter(payload_codec=Compress())), EncryptionCodec(ring("k1")))
    assert encrypts(converter) and issubclass(converter.payload_converter_class, PydanticPayloadConverter)
    assert converter.failure_converter_class is DefaultFailureConverterWithEncodedAttributes
    [sealed] = await converter.encode([{"name": "Marie Curie"}])
    assert sealed.metadata["encoding"] == ENCODING
    [inner] = await EncryptionCodec(ring("k1")).decode([sealed])
    assert inner.metadata["encoding"] == b"app/marked"  # the application's codec ran first, inside
    assert await converter.decode([sealed]) == [{"name": "Marie Curie"}]
    again = encrypting(converter, EncryptionCodec(ring("k1", "k2")))  # applied twice: one encryption, the newer
    assert isinstance(again.payload_codec.inner, Compress)  # type: ignore[union-attr]
    assert encrypting(converter, None) is converter
    off = encrypting(with_pydantic(None), EncryptionCodec(ring("k1"), encrypt=False))
    assert off.failure_converter_class is not DefaultFailureConverterWithEncodedAttributes


async def test_a_worker_whose_client_does_not_encrypt_is_refused_when_encryption_is_on(client: Client, settings: Settings):
    encrypted_settings = settings.model_copy(update={"temporal": TemporalSettings(encryption_key=f"k1:{key(b'1')}")})
    with pytest.raises(ValueError, match="temporal.encryption_key is set, but this worker's client does not encrypt"):
        Worker(client, task_queue="printroom", plugins=[PrintroomPlugin(encrypted_settings, check_templates=False)])
