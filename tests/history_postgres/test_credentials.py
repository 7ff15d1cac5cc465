"""The history DSN's password is never printed: errors, repr, ``byway history``."""

from __future__ import annotations

import pytest
from byway_history_postgres import PostgresHistorySettings, PostgresHistoryStore

from byway import ConfigurationError
from byway.cli import main

SECRET = "pg-s3cret-0d2a"


@pytest.mark.parametrize(
    "dsn",
    [
        f"mysql://alice:{SECRET}@db/app",
        f"host=db user=alice password={SECRET}",
        f"host=db password='{SECRET} x'",
    ],
)
def test_a_refused_dsn_is_named_without_its_password(dsn: str) -> None:
    with pytest.raises(ConfigurationError, match="expected a postgresql:// URL") as caught:
        PostgresHistorySettings(dsn=dsn)
    assert SECRET not in str(caught.value) and "***" in str(caught.value)
    with pytest.raises(ConfigurationError, match="dsn: expected") as caught:
        PostgresHistoryStore(dsn)
    assert SECRET not in str(caught.value)


def test_the_settings_repr_masks_the_password() -> None:
    settings = PostgresHistorySettings(
        dsn=f"postgresql://alice:{SECRET}@db/app?sslpassword=k3y-pass"
    )
    assert SECRET not in repr(settings) and "k3y-pass" not in repr(settings)
    assert "postgresql://alice:***@db/app" in repr(settings)


def test_byway_history_prints_no_password(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "s", "--dsn", f"host=db password={SECRET}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and SECRET not in err
