"""Settings: defaults, validation, and refusal of unknown or unsafe values."""

from __future__ import annotations

from pathlib import Path

import pytest

from authority.config import Environment, KeyStoreKind, LogFormat, load_settings
from authority.errors import ConfigurationError


def test_defaults_are_the_embedded_development_setup() -> None:
    settings = load_settings({})
    assert settings.env is Environment.DEVELOPMENT
    assert settings.database_url == "sqlite:///var/authority.db"
    assert settings.issuer == "http://127.0.0.1:8000"
    assert settings.keys_dir == Path("keys")
    assert settings.keystore is KeyStoreKind.FILE
    assert settings.log_format is LogFormat.TEXT
    assert settings.sqlite_path == Path("var/authority.db")


def test_plain_postgresql_url_works_as_written() -> None:
    settings = load_settings({"AUTHORITY_DATABASE_URL": "postgresql://postgres@127.0.0.1/test"})
    assert settings.database_url == "postgresql+psycopg://postgres@127.0.0.1/test"
    assert not settings.is_sqlite
    assert settings.sqlite_path is None
    legacy = load_settings({"AUTHORITY_DATABASE_URL": "postgres://u@h/db"})
    assert legacy.database_url == "postgresql+psycopg://u@h/db"


def test_explicit_driver_is_kept() -> None:
    url = "postgresql+psycopg://u@h/db"
    assert load_settings({"AUTHORITY_DATABASE_URL": url}).database_url == url


def test_unknown_setting_is_named_with_a_suggestion() -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings({"AUTHORITY_ISSUR": "https://id.example.gov"})
    assert caught.value.detail == (
        "unknown setting AUTHORITY_ISSUR (did you mean AUTHORITY_ISSUER?)"
    )


def test_unrelated_environment_is_ignored() -> None:
    assert load_settings({"PATH": "/bin", "HOME": "/root"}).issuer == "http://127.0.0.1:8000"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("AUTHORITY_DATABASE_URL", "mysql://x/y", "AUTHORITY_DATABASE_URL: must be a sqlite"),
        ("AUTHORITY_ISSUER", "ftp://id.example.gov", "AUTHORITY_ISSUER: must be an absolute"),
        ("AUTHORITY_ISSUER", "https://id.example.gov/?a=1", "AUTHORITY_ISSUER: must not contain"),
        ("AUTHORITY_ISSUER", "https://id.example.gov/#x", "AUTHORITY_ISSUER: must not contain"),
        ("AUTHORITY_KEYSTORE", "cloud", "AUTHORITY_KEYSTORE: Input should be 'file' or 'pkcs11'"),
        ("AUTHORITY_LOG_LEVEL", "chatty", "AUTHORITY_LOG_LEVEL: must be DEBUG"),
        ("AUTHORITY_MAX_BODY_BYTES", "10", "AUTHORITY_MAX_BODY_BYTES: Input should be greater"),
        ("AUTHORITY_ENV", "staging", "AUTHORITY_ENV: Input should be 'development' or"),
    ],
)
def test_malformed_values_name_the_setting(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings({variable: value})
    assert caught.value.detail.startswith(message)


def test_issuer_trailing_slash_is_normalised() -> None:
    assert load_settings({"AUTHORITY_ISSUER": "https://id.example.gov/"}).issuer == (
        "https://id.example.gov"
    )


def test_pkcs11_requires_module_token_and_pin() -> None:
    with pytest.raises(ConfigurationError, match="AUTHORITY_PKCS11_MODULE is required"):
        load_settings({"AUTHORITY_KEYSTORE": "pkcs11"})
    with pytest.raises(ConfigurationError, match="AUTHORITY_PKCS11_PIN is required"):
        load_settings(
            {
                "AUTHORITY_KEYSTORE": "pkcs11",
                "AUTHORITY_PKCS11_MODULE": "/m.so",
                "AUTHORITY_PKCS11_TOKEN": "t",
            }
        )
    ok = load_settings(
        {
            "AUTHORITY_KEYSTORE": "pkcs11",
            "AUTHORITY_PKCS11_MODULE": "/m.so",
            "AUTHORITY_PKCS11_TOKEN": "t",
            "AUTHORITY_PKCS11_PIN": "1234",
        }
    )
    assert ok.keystore is KeyStoreKind.PKCS11


def test_production_refuses_plain_http_issuer() -> None:
    with pytest.raises(ConfigurationError, match="AUTHORITY_ISSUER must use https"):
        load_settings(
            {
                "AUTHORITY_ENV": "production",
                "AUTHORITY_ISSUER": "http://id.gov.example",
                "AUTHORITY_KEYSTORE_PASSPHRASE": "x" * 32,
            }
        )


def test_production_requires_a_passphrase_for_the_file_store() -> None:
    with pytest.raises(ConfigurationError, match="AUTHORITY_KEYSTORE_PASSPHRASE is required"):
        load_settings({"AUTHORITY_ENV": "production", "AUTHORITY_ISSUER": "https://id.gov.example"})


def test_secrets_are_not_in_the_representation() -> None:
    settings = load_settings({"AUTHORITY_KEYSTORE_PASSPHRASE": "correct horse battery staple"})
    assert "correct horse" not in repr(settings)


def test_production_refuses_a_weak_passphrase() -> None:
    base = {"AUTHORITY_ENV": "production", "AUTHORITY_ISSUER": "https://id.gov.example"}
    with pytest.raises(ConfigurationError, match="use at least 16"):
        load_settings({**base, "AUTHORITY_KEYSTORE_PASSPHRASE": "short"})
    with pytest.raises(ConfigurationError, match="too predictable"):
        load_settings({**base, "AUTHORITY_KEYSTORE_PASSPHRASE": "aaaaaaaaaaaaaaaaaaaa"})
    strong = load_settings({**base, "AUTHORITY_KEYSTORE_PASSPHRASE": "Tr0ub4dor & 3 horses!"})
    assert strong.env is Environment.PRODUCTION


@pytest.mark.parametrize("value", ["3/10", "a/b/c", "10/3/15", "3/10/0", "3/10/99999", ""])
def test_throttle_limits_are_validated(value: str) -> None:
    with pytest.raises(ConfigurationError, match="AUTHORITY_THROTTLE_ACCOUNT"):
        load_settings({"AUTHORITY_THROTTLE_ACCOUNT": value})


def test_throttle_limits_reach_the_throttle(tmp_path: Path) -> None:
    from authority.identity.throttle import ACCOUNT_POLICY, Throttle, configured_policy

    settings = load_settings({"AUTHORITY_THROTTLE_ACCOUNT": "1/4/60"})
    policy = configured_policy(ACCOUNT_POLICY, settings.throttle_account)
    assert (policy.free_failures, policy.lock_after, policy.lock_for.total_seconds()) == (
        1,
        4,
        3600,
    )
    assert Throttle(str, account=policy).keys("x", None)[0][1] is policy
