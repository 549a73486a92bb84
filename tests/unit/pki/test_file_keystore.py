"""The encrypted file key store, on a real directory."""

from __future__ import annotations

import base64
import json
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from authority.errors import ConfigurationError, InvalidInput
from authority.pki import file_keystore
from authority.pki.file_keystore import FileKeyStore, passphrase_strength_problem
from authority.pki.keystore import (
    KeyAlgorithm,
    KeyInfo,
    KeyNotFound,
    KeyStoreError,
    KeyStoreUnavailable,
)
from authority.pki.keystores import open_keystore

PASSPHRASE = "correct horse battery staple 42"


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    return tmp_path / "keys"


@pytest.fixture
def store(keys_dir: Path) -> Iterator[FileKeyStore]:
    keystore = FileKeyStore(keys_dir, PASSPHRASE)
    yield keystore
    keystore.close()


def verify(info: KeyInfo, signature: bytes, data: bytes) -> None:
    info.public_key.verify(signature, data, ec.ECDSA(info.algorithm.hash_algorithm))


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm))
def test_signatures_verify_and_bind_the_message(
    store: FileKeyStore, algorithm: KeyAlgorithm
) -> None:
    info = store.generate("seal of the ministry", algorithm)
    assert isinstance(info.public_key.curve, type(algorithm.curve))

    signature = store.sign(info.handle, b"licence 42")

    verify(info, signature, b"licence 42")
    with pytest.raises(InvalidSignature):
        verify(info, signature, b"licence 43")
    assert store.signer(info.handle).sign(b"x") != store.sign(info.handle, b"x")  # random k


def test_handles_are_random_and_strict(store: FileKeyStore) -> None:
    handles = {store.generate(f"key {i}").handle for i in range(3)}
    assert len(handles) == 3
    assert all(file_keystore.HANDLE_PATTERN.fullmatch(handle) for handle in handles)


def test_private_keys_on_disk_are_encrypted(store: FileKeyStore, keys_dir: Path) -> None:
    info = store.generate("token signing", KeyAlgorithm.EC_P384)
    pem = (keys_dir / f"{info.handle}.pem").read_bytes()

    assert b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in pem
    with pytest.raises((ValueError, TypeError)):
        serialization.load_pem_private_key(pem, b"not the passphrase")
    with pytest.raises(TypeError):
        serialization.load_pem_private_key(pem, None)
    key = serialization.load_pem_private_key(pem, PASSPHRASE.encode())
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key() == info.public_key

    # The private scalar appears in no file, neither raw nor inside base64.
    scalar = key.private_numbers().private_value.to_bytes(48, "big")
    for path in keys_dir.iterdir():
        content = path.read_bytes()
        assert scalar not in content
        assert b"BEGIN PRIVATE KEY" not in content and b"BEGIN EC PRIVATE KEY" not in content
    body = b"".join(line for line in pem.splitlines() if not line.startswith(b"-----"))
    assert scalar not in base64.b64decode(body)


def test_files_are_owner_only_and_written_whole(store: FileKeyStore, keys_dir: Path) -> None:
    info = store.generate("seal")

    assert stat.S_IMODE(keys_dir.stat().st_mode) == 0o700
    names = sorted(path.name for path in keys_dir.iterdir())
    assert names == sorted([".keystore.json", f"{info.handle}.json", f"{info.handle}.pem"])
    for path in keys_dir.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_sidecar_describes_the_key_without_decryption(store: FileKeyStore, keys_dir: Path) -> None:
    info = store.generate("ocsp responder", KeyAlgorithm.EC_P384)
    sidecar = json.loads((keys_dir / f"{info.handle}.json").read_text())

    assert sidecar["label"] == "ocsp responder"
    assert sidecar["algorithm"] == "EC-P384"
    assert sidecar["created_at"].endswith("Z")
    public = serialization.load_pem_public_key(sidecar["public_key"].encode())
    assert public == info.public_key


def test_keys_persist_across_store_instances(store: FileKeyStore, keys_dir: Path) -> None:
    first = store.generate("root", KeyAlgorithm.EC_P384)
    second = store.generate("seal CA")

    reopened = FileKeyStore(keys_dir, PASSPHRASE)
    reopened.check()

    assert [info.handle for info in reopened.all_keys()] == [first.handle, second.handle]
    again = reopened.get(first.handle)
    assert (again.label, again.algorithm, again.created_at) == (
        first.label,
        first.algorithm,
        first.created_at,
    )
    assert again.public_key == first.public_key
    verify(first, reopened.sign(first.handle, b"persisted"), b"persisted")


def test_list_is_oldest_first(store: FileKeyStore) -> None:
    made = [store.generate(f"key {i}") for i in range(3)]
    listed = store.all_keys()
    assert [info.handle for info in listed] == [info.handle for info in made]
    assert [info.created_at for info in listed] == sorted(info.created_at for info in listed)


def test_wrong_passphrase_is_unavailable_and_never_echoed(
    store: FileKeyStore, keys_dir: Path
) -> None:
    info = store.generate("seal")
    wrong = "a-wrong-passphrase-0123456789"
    stranger = FileKeyStore(keys_dir, wrong)

    for attempt in (stranger.check, lambda: stranger.sign(info.handle, b"x")):
        with pytest.raises(KeyStoreUnavailable) as caught:
            attempt()
        assert "AUTHORITY_KEYSTORE_PASSPHRASE" in str(caught.value)
        assert wrong not in str(caught.value) and PASSPHRASE not in str(caught.value)
    with pytest.raises(KeyStoreUnavailable):
        stranger.get(info.handle)
    with pytest.raises(KeyStoreUnavailable):
        stranger.generate("would be under another passphrase")
    assert len(list(keys_dir.glob("*.pem"))) == 1


@pytest.mark.parametrize(
    "handle",
    [
        "../etc/passwd",
        "/etc/passwd",
        "k-0123456789abcdef/../../x",
        "k-../../../etc/passwd",
        "K-0123456789ABCDEF",
        "k-0123456789abcde",
        "k-0123456789abcdef\n",
        ".keystore",
        "",
    ],
)
def test_malformed_handles_are_not_found(store: FileKeyStore, handle: str) -> None:
    with pytest.raises(KeyNotFound):
        store.get(handle)
    with pytest.raises(KeyNotFound):
        store.sign(handle, b"x")


def test_unknown_handle_is_not_found(store: FileKeyStore) -> None:
    with pytest.raises(KeyNotFound):
        store.get("k-0123456789abcdef")


def test_substituted_public_key_is_detected(store: FileKeyStore, keys_dir: Path) -> None:
    victim, other = store.generate("seal"), store.generate("attacker")
    path = keys_dir / f"{victim.handle}.json"
    sidecar = json.loads(path.read_text())
    sidecar["public_key"] = json.loads((keys_dir / f"{other.handle}.json").read_text())[
        "public_key"
    ]
    path.write_text(json.dumps(sidecar))

    with pytest.raises(KeyStoreError, match="integrity"):
        FileKeyStore(keys_dir, PASSPHRASE).get(victim.handle)


@pytest.mark.parametrize(
    ("damage", "error"),
    [
        (lambda keys, handle: (keys / f"{handle}.pem").unlink(), KeyStoreError),
        (lambda keys, handle: (keys / f"{handle}.json").unlink(), KeyStoreError),
        (lambda keys, handle: (keys / f"{handle}.json").write_text("{not json"), KeyStoreError),
        (lambda keys, handle: (keys / f"{handle}.pem").write_text("garbage"), KeyStoreError),
        (lambda keys, handle: [p.unlink() for p in keys.glob(f"{handle}.*")], KeyNotFound),
    ],
)
def test_damaged_files_raise_clear_errors(
    store: FileKeyStore, keys_dir: Path, damage: object, error: type[Exception]
) -> None:
    handle = store.generate("seal").handle
    damage(keys_dir, handle)  # type: ignore[operator]

    with pytest.raises(error, match=handle):
        fresh = FileKeyStore(keys_dir, PASSPHRASE)
        fresh.get(handle)
        fresh.sign(handle, b"x")


def test_corrupt_key_under_the_right_passphrase_is_an_error_not_a_lockout(
    store: FileKeyStore, keys_dir: Path
) -> None:
    handle = store.generate("seal").handle
    pem_path = keys_dir / f"{handle}.pem"
    lines = pem_path.read_text().splitlines()
    body = bytearray(base64.b64decode("".join(lines[1:-1])))
    body[-5] ^= 0xFF  # flip a ciphertext byte near the end (padding block)
    encoded = base64.encodebytes(bytes(body)).decode()
    pem_path.write_text(f"{lines[0]}\n{encoded}{lines[-1]}\n")

    with pytest.raises(KeyStoreError, match="corrupt") as caught:
        FileKeyStore(keys_dir, PASSPHRASE).sign(handle, b"x")
    assert not isinstance(caught.value, KeyStoreUnavailable)


def test_check(store: FileKeyStore, keys_dir: Path) -> None:
    store.check()  # empty store: usable
    store.generate("seal")
    FileKeyStore(keys_dir, PASSPHRASE).check()

    gone = FileKeyStore(keys_dir / "sub", PASSPHRASE)
    (keys_dir / "sub").rmdir()
    with pytest.raises(KeyStoreUnavailable, match="AUTHORITY_KEYS_DIR"):
        gone.check()


def test_decrypted_keys_are_cached(store: FileKeyStore, keys_dir: Path, monkeypatch) -> None:
    handle = store.generate("seal").handle
    fresh = FileKeyStore(keys_dir, PASSPHRASE)
    loads = []
    real = serialization.load_pem_private_key

    def counting(data: bytes, password: bytes | None) -> object:
        loads.append(1)
        return real(data, password)

    monkeypatch.setattr(file_keystore.serialization, "load_pem_private_key", counting)
    for _ in range(50):
        fresh.sign(handle, b"x")
    assert len(loads) == 1


def test_concurrent_signing(store: FileKeyStore, keys_dir: Path) -> None:
    info = store.generate("seal")
    fresh = FileKeyStore(keys_dir, PASSPHRASE)
    results: list[bytes] = []
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(50):
                results.append(fresh.sign(info.handle, f"{n}-{i}".encode()))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(results) == 200


def test_labels_are_validated(store: FileKeyStore) -> None:
    for label in ("", "x" * 129, "bad\nlabel"):
        with pytest.raises(InvalidInput):
            store.generate(label)


def test_empty_passphrase_is_a_configuration_error(keys_dir: Path) -> None:
    with pytest.raises(ConfigurationError, match="AUTHORITY_KEYSTORE_PASSPHRASE"):
        FileKeyStore(keys_dir, "")


@pytest.mark.parametrize(
    ("passphrase", "weak"),
    [
        ("short", True),
        ("fifteen chars!!", True),
        ("aaaaaaaaaaaaaaaaaaaaaaaa", True),
        ("abababababababababababab", True),
        ("correct horse battery staple", False),
        ("Tr0ub4dor&3-Xq9v!", False),
        ("k3R9x-Vq2Lw8-Zt5Mn", False),
    ],
)
def test_passphrase_strength(passphrase: str, weak: bool) -> None:
    problem = passphrase_strength_problem(passphrase)
    assert (problem is not None) is weak
    if problem is not None:
        assert "AUTHORITY_KEYSTORE_PASSPHRASE" in problem
        assert passphrase not in problem


def test_open_keystore_file(keys_dir: Path) -> None:
    opened = open_keystore(
        "file",
        keys_dir=keys_dir,
        passphrase=PASSPHRASE,
        pkcs11_module=None,
        pkcs11_token=None,
        pkcs11_pin=None,
    )
    assert isinstance(opened, FileKeyStore) and opened.kind == "file"
    with pytest.raises(ConfigurationError, match="AUTHORITY_KEYSTORE_PASSPHRASE"):
        open_keystore(
            "file",
            keys_dir=keys_dir,
            passphrase=None,
            pkcs11_module=None,
            pkcs11_token=None,
            pkcs11_pin=None,
        )
    with pytest.raises(ConfigurationError, match="AUTHORITY_KEYSTORE"):
        open_keystore(
            "vault",
            keys_dir=keys_dir,
            passphrase=PASSPHRASE,
            pkcs11_module=None,
            pkcs11_token=None,
            pkcs11_pin=None,
        )
