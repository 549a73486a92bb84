"""The PKCS#11 key store, against a real SoftHSM2 token."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec

from authority.errors import ConfigurationError
from authority.pki.keystore import (
    KeyAlgorithm,
    KeyInfo,
    KeyNotFound,
    KeyStoreUnavailable,
)
from authority.pki.keystores import open_keystore
from tests.unit.pki.conftest import TOKEN_DIR_NAME, SoftHsmToken

if os.environ.get("CI") == "true":
    import pkcs11  # a dependency: missing in CI is a failure, not a skip
else:
    pkcs11 = pytest.importorskip("pkcs11")
from authority.pki.pkcs11_keystore import (
    HANDLE_PATTERN,
    Pkcs11KeyStore,
    find_softhsm2_module,
)

Attribute, ObjectClass = pkcs11.Attribute, pkcs11.ObjectClass


@pytest.fixture
def store(softhsm_token: SoftHsmToken) -> Iterator[Pkcs11KeyStore]:
    keystore = Pkcs11KeyStore(*softhsm_token)
    yield keystore
    keystore.close()


def verify(info: KeyInfo, signature: bytes, data: bytes) -> None:
    info.public_key.verify(signature, data, ec.ECDSA(info.algorithm.hash_algorithm))


def private_key_attributes(token: SoftHsmToken, handle: str) -> dict[object, object]:
    """Read the private key's attributes in a session of our own."""
    wanted = [
        Attribute.TOKEN,
        Attribute.PRIVATE,
        Attribute.SENSITIVE,
        Attribute.EXTRACTABLE,
        Attribute.ALWAYS_SENSITIVE,
        Attribute.NEVER_EXTRACTABLE,
        Attribute.SIGN,
        Attribute.DERIVE,
        Attribute.DECRYPT,
        Attribute.LABEL,
    ]
    lib = pkcs11.lib(token.module_path)
    with lib.get_token(token_label=token.label).open(user_pin=token.pin) as session:
        template = {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.ID: bytes.fromhex(handle)}
        (key,) = list(session.get_objects(template))
        values = {attribute: key[attribute] for attribute in wanted}
        with pytest.raises(pkcs11.exceptions.AttributeSensitive):
            key[Attribute.VALUE]  # reading it must fail
        return values


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm))
def test_signatures_verify_and_bind_the_message(
    store: Pkcs11KeyStore, algorithm: KeyAlgorithm
) -> None:
    info = store.generate("seal of the ministry", algorithm)
    assert HANDLE_PATTERN.fullmatch(info.handle) and len(info.handle) == 32
    assert isinstance(info.public_key.curve, type(algorithm.curve))

    signature = store.sign(info.handle, b"licence 42")

    verify(info, signature, b"licence 42")
    with pytest.raises(InvalidSignature):
        verify(info, signature, b"licence 43")
    verify(info, store.signer(info.handle).sign(b"via signer"), b"via signer")


def test_private_key_is_sensitive_and_never_extractable(
    store: Pkcs11KeyStore, softhsm_token: SoftHsmToken
) -> None:
    info = store.generate("root", KeyAlgorithm.EC_P384)
    store.close()  # login is per process: let our own session log in

    attributes = private_key_attributes(softhsm_token, info.handle)

    assert attributes[Attribute.TOKEN] is True
    assert attributes[Attribute.PRIVATE] is True
    assert attributes[Attribute.SENSITIVE] is True
    assert attributes[Attribute.EXTRACTABLE] is False
    assert attributes[Attribute.ALWAYS_SENSITIVE] is True
    assert attributes[Attribute.NEVER_EXTRACTABLE] is True
    assert attributes[Attribute.SIGN] is True
    assert attributes[Attribute.DERIVE] is False
    assert attributes[Attribute.DECRYPT] is False
    assert attributes[Attribute.LABEL] == "root"


def test_keys_survive_reopening_the_store(
    store: Pkcs11KeyStore, softhsm_token: SoftHsmToken
) -> None:
    first = store.generate("root", KeyAlgorithm.EC_P384)
    second = store.generate("seal CA")
    store.close()

    reopened = Pkcs11KeyStore(*softhsm_token)
    try:
        reopened.check()
        assert [info.handle for info in reopened.all_keys()] == [first.handle, second.handle]
        again = reopened.get(first.handle)
        assert (again.label, again.algorithm, again.created_at) == (
            "root",
            KeyAlgorithm.EC_P384,
            first.created_at,
        )
        assert again.public_key == first.public_key
        verify(first, reopened.sign(first.handle, b"persisted"), b"persisted")
    finally:
        reopened.close()


def test_list_is_oldest_first(store: Pkcs11KeyStore) -> None:
    made = [store.generate(f"key {i}") for i in range(3)]
    assert [info.handle for info in store.all_keys()] == [info.handle for info in made]


def test_wrong_pin_is_unavailable_and_never_echoed(softhsm_token: SoftHsmToken) -> None:
    wrong = "98765"
    stranger = Pkcs11KeyStore(softhsm_token.module_path, softhsm_token.label, wrong)

    with pytest.raises(KeyStoreUnavailable) as caught:
        stranger.check()
    assert "AUTHORITY_PKCS11_PIN" in str(caught.value)
    assert wrong not in str(caught.value)


def test_wrong_pin_is_refused_while_another_store_is_logged_in(
    store: Pkcs11KeyStore, softhsm_token: SoftHsmToken
) -> None:
    store.check()  # logs the process in to the token
    stranger = Pkcs11KeyStore(softhsm_token.module_path, softhsm_token.label, "98765")
    with pytest.raises(KeyStoreUnavailable, match="AUTHORITY_PKCS11_PIN"):
        stranger.check()

    colleague = Pkcs11KeyStore(*softhsm_token)  # same PIN: shares the login
    info = colleague.generate("shared")
    store.close()  # logs the process out; the colleague logs in again by itself
    verify(info, colleague.sign(info.handle, b"x"), b"x")
    colleague.close()


def test_missing_token_or_module_is_unavailable(
    softhsm_token: SoftHsmToken, tmp_path: Path
) -> None:
    no_token = Pkcs11KeyStore(softhsm_token.module_path, "no-such-token", softhsm_token.pin)
    with pytest.raises(KeyStoreUnavailable, match="AUTHORITY_PKCS11_TOKEN"):
        no_token.check()

    no_module = Pkcs11KeyStore(str(tmp_path / "missing.so"), softhsm_token.label, "1234")
    with pytest.raises(KeyStoreUnavailable, match="AUTHORITY_PKCS11_MODULE"):
        no_module.check()

    not_a_module = tmp_path / "not-a-module.so"
    not_a_module.write_bytes(b"\x7fELF but not really")
    bogus = Pkcs11KeyStore(str(not_a_module), softhsm_token.label, "1234")
    with pytest.raises(KeyStoreUnavailable, match="AUTHORITY_PKCS11_MODULE"):
        bogus.check()


@pytest.mark.parametrize(
    "handle", ["../etc/passwd", "", "xyz", "ABCDEF", "0", "k-0123456789abcdef", "00" * 65]
)
def test_malformed_handles_are_not_found(store: Pkcs11KeyStore, handle: str) -> None:
    with pytest.raises(KeyNotFound):
        store.get(handle)
    with pytest.raises(KeyNotFound):
        store.sign(handle, b"x")


def test_unknown_handle_is_not_found(store: Pkcs11KeyStore) -> None:
    with pytest.raises(KeyNotFound):
        store.get("00" * 16)


def test_concurrent_signing_from_four_threads(store: Pkcs11KeyStore) -> None:
    keys = [store.generate("seal"), store.generate("tsa", KeyAlgorithm.EC_P384)]
    failures: list[BaseException] = []
    signed: list[tuple[KeyInfo, bytes, bytes]] = []

    def work(n: int) -> None:
        try:
            for i in range(40):
                info = keys[(n + i) % 2]
                data = f"{n}-{i}".encode()
                signed.append((info, data, store.sign(info.handle, data)))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not failures
    assert len(signed) == 160
    for info, data, signature in signed:
        verify(info, signature, data)


def test_session_is_reopened_after_the_token_drops_it(
    store: Pkcs11KeyStore, softhsm_token: SoftHsmToken
) -> None:
    info = store.generate("seal")
    store.sign(info.handle, b"before")

    pkcs11.lib(softhsm_token.module_path).reinitialize()  # every session handle is now void

    verify(info, store.sign(info.handle, b"after"), b"after")
    store.check()


def test_no_key_material_outside_the_token_directory(
    softhsm_token: SoftHsmToken, tmp_path: Path
) -> None:
    keys_dir = tmp_path / "keys"
    token_dir = tmp_path / TOKEN_DIR_NAME

    def files_outside_token() -> set[Path]:
        return {p for p in tmp_path.rglob("*") if p.is_file() and token_dir not in p.parents}

    before = files_outside_token()
    keystore = open_keystore(
        "pkcs11",
        keys_dir=keys_dir,
        passphrase=None,
        pkcs11_module=softhsm_token.module_path,
        pkcs11_token=softhsm_token.label,
        pkcs11_pin=softhsm_token.pin,
    )
    assert keystore.kind == "pkcs11"
    try:
        for algorithm in KeyAlgorithm:
            info = keystore.generate("seal", algorithm)
            keystore.sign(info.handle, b"x")
        keystore.all_keys()
    finally:
        keystore.close()

    assert not keys_dir.exists() or not any(keys_dir.iterdir())
    assert files_outside_token() == before
    assert any(token_dir.rglob("*.object"))  # the keys went to the token instead


def test_find_softhsm2_module(softhsm_token: SoftHsmToken) -> None:
    found = find_softhsm2_module()
    assert found is not None and Path(found).is_file()


def test_open_keystore_names_missing_pkcs11_settings(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as caught:
        open_keystore(
            "pkcs11",
            keys_dir=tmp_path,
            passphrase=None,
            pkcs11_module="/usr/lib/softhsm/libsofthsm2.so",
            pkcs11_token=None,
            pkcs11_pin=None,
        )
    message = str(caught.value)
    assert "AUTHORITY_PKCS11_TOKEN" in message and "AUTHORITY_PKCS11_PIN" in message
    assert "AUTHORITY_PKCS11_MODULE" not in message
