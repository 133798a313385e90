from __future__ import annotations

import pytest

from itinera.settings import SettingsError, load_settings


def test_defaults_need_no_environment() -> None:
    settings = load_settings({})
    assert settings.uses_embedded_postgres
    assert settings.uses_embedded_redis
    assert (settings.host, settings.port, settings.embedding_dim) == ("127.0.0.1", 8000, 1536)
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.rate_limit_fail_open is True


def test_plain_and_prefixed_names_are_read() -> None:
    settings = load_settings(
        {
            "DATABASE_URL": "postgresql://app@db/itinera",
            "ITINERA_ADMIN_DATABASE_URL": "postgresql://owner@db/itinera",
            "REDIS_URL": "redis://cache:6379/0",
            "ITINERA_PORT": "9000",
            "ITINERA_RATE_LIMIT_FAIL_OPEN": "false",
            "ITINERA_CORS_ORIGINS": "https://a.example, https://b.example",
            "ITINERA_TRUSTED_PROXIES": "10.0.0.0/8,127.0.0.1",
        }
    )
    assert not settings.uses_embedded_postgres
    assert settings.port == 9000
    assert settings.rate_limit_fail_open is False
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert len(settings.trusted_proxy_networks) == 2


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ITINERA_EMBEDDING_DIM", "2001"),
        ("ITINERA_PORT", "eighty"),
        ("ITINERA_TRUSTED_PROXIES", "not-an-address"),
        ("ITINERA_WORKERS", "4"),
    ],
)
def test_bad_values_name_their_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        load_settings({variable: value})
