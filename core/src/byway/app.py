"""Entry points that build and run a worker: ``run_worker`` and ``load_worker``."""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any

from byway._log import get_logger
from byway._redis_parts import url_from_parts
from byway.config import RunnerConfig
from byway.errors import ConfigurationError, WorkerError
from byway.health import DEFAULT_HEALTH_HOST
from byway.plugins import Plugin, adapt, discover_plugins
from byway.runtime.runner import WorkerRunner
from byway.settings import RedisSettings
from byway.worker import FunctionWorker, GatewayWorker
from byway.workspace import WorkspacePolicy, Workspaces

__all__ = [
    "BY_FRAMEWORK_REDIS_URL",
    "load_worker",
    "redis_settings",
    "run_worker",
    "serve",
    "worker_command",
    "worker_env",
]

log = get_logger("byway.worker")

#: Where by-framework's entry points (``run_worker``, ``python -m byway --worker-class``)
#: look for Redis when neither an argument nor ``$BYWAY_REDIS_URL`` names one, as
#: by-framework documents; ``byway worker`` starts the embedded server instead.
BY_FRAMEWORK_REDIS_URL = "redis://localhost:6379/0"


def _env_override(name: str, value: int) -> int:
    raw = os.environ.get(name)
    if not raw:
        return value
    try:
        parsed = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name}: expected an integer, got {raw!r}") from None
    if parsed <= 0:
        raise ConfigurationError(f"{name}: expected a positive integer, got {parsed}")
    return parsed


def load_worker(
    target: str | type[GatewayWorker] | GatewayWorker,
    *,
    worker_id: str | None = None,
    agent_types: list[str] | None = None,
) -> GatewayWorker:
    """Build a worker from ``module:attr``, a GatewayWorker class or an instance.

    ``agent_types`` renames the types of a function agent (``@agent``); a class declares
    its own through ``get_agent_types()``.
    """
    obj: Any = target
    if isinstance(target, str):
        module_name, sep, attr = target.partition(":")
        if not sep or not module_name or not attr:
            raise ConfigurationError(
                f"worker: expected 'module:attribute' (e.g. myapp.agents:Echo), got {target!r}"
            )
        if "" not in sys.path and os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigurationError(f"worker: cannot import {module_name!r}: {exc}") from exc
        try:
            for part in attr.split("."):
                obj = getattr(module if obj is target else obj, part)
        except AttributeError:
            raise ConfigurationError(f"worker: {module_name!r} has no attribute {attr!r}") from None
    if isinstance(obj, type) and issubclass(obj, GatewayWorker):
        if agent_types:
            raise ConfigurationError(
                f"--agent-type: {obj.__name__} declares its own agent types in get_agent_types()"
            )
        worker: GatewayWorker = obj(worker_id=worker_id)
        return worker
    if isinstance(obj, GatewayWorker):
        if worker_id:
            obj.worker_id = worker_id
        if agent_types:
            if not isinstance(obj, FunctionWorker):
                raise ConfigurationError(
                    f"--agent-type: {type(obj).__name__} declares its own agent types"
                )
            obj.agent_types = list(agent_types)
        instance: GatewayWorker = obj
        return instance
    adapted = adapt(obj, agent_types)
    if adapted is not None:
        if worker_id:
            adapted.worker_id = worker_id
        return adapted
    raise ConfigurationError(
        f"worker: {target!r} is a {type(obj).__name__}; expected a GatewayWorker subclass or "
        "instance, a function decorated with @byway.agent(...), or an object an installed "
        "adapter serves (pip install byway-langgraph / byway-adk)"
    )


def worker_command(target: str, settings: RedisSettings, *extra: str) -> list[str]:
    """The argv that runs ``byway worker TARGET`` in a new process on ``settings``' Redis;
    start it with ``env=worker_env(settings)``.

    The Redis URL is not in it: a command line is readable by every user of the machine
    (``ps``, ``/proc/<pid>/cmdline``) and the URL may hold a password, so the child reads
    it from ``BYWAY_REDIS_URL`` (:func:`worker_env`).
    """
    return [
        sys.executable, "-m", "byway", "--log-level", "WARNING", "worker", target,
        "--namespace", settings.namespace, "--key-schema", settings.keys.schema, *extra,
    ]  # fmt: skip


def worker_env(settings: RedisSettings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a child process on ``settings``' Redis: ``base`` (default: this
    process's environment) with ``BYWAY_REDIS_URL`` set to the URL resolved first, so a
    child of a process that uses the embedded server attaches to the same one."""
    env = dict(os.environ if base is None else base)
    env["BYWAY_REDIS_URL"] = settings.resolved_url()
    return env


def redis_settings(
    redis_url: str | None = None,
    *,
    redis_host: str | None = None,
    redis_port: int | None = None,
    redis_db: int | None = None,
    redis_username: str | None = None,
    redis_password: str | None = None,
    redis_max_connections: int | None = None,
    max_concurrency: int = 50,
    base: RedisSettings | None = None,
    default_url: str | None = None,
) -> RedisSettings:
    """The settings ``run_worker`` connects with: ``base`` (default: from the environment)
    with ``redis_url``, or by-framework's host/port/db/user/password form (a part not
    given takes by-framework's default: localhost, 6379, 0), not both. With neither,
    ``$BYWAY_REDIS_URL``, else ``default_url``, else the embedded server.

    The pool holds ``$BYAI_REDIS_MAX_CONNECTIONS`` connections, else
    ``redis_max_connections``, else at least ``max_concurrency + 10``.
    """
    settings = base if base is not None else RedisSettings.from_env()
    parts = {
        "redis_host": redis_host,
        "redis_port": redis_port,
        "redis_db": redis_db,
        "redis_username": redis_username,
        "redis_password": redis_password,
    }
    given = [name for name, value in parts.items() if value is not None]
    overrides: dict[str, Any] = {}
    if redis_url is not None and given:
        raise ConfigurationError(
            f"redis_url and {', '.join(given)}: name Redis by a URL or by host/port, not both"
        )
    if redis_url is not None:
        overrides["url"] = redis_url
    elif given:
        overrides["url"] = url_from_parts(
            redis_host, redis_port, redis_db, redis_username, redis_password
        )
    elif default_url is not None and settings.url is None:
        overrides["url"] = default_url
    if not os.environ.get("BYAI_REDIS_MAX_CONNECTIONS"):
        if redis_max_connections is not None:
            if (
                isinstance(redis_max_connections, bool)
                or not isinstance(redis_max_connections, int)
                or redis_max_connections < 2
            ):
                raise ConfigurationError(
                    "redis_max_connections: expected an integer of at least 2, "
                    f"got {redis_max_connections!r}"
                )
            overrides["max_connections"] = redis_max_connections
        else:  # by-framework's rule: a connection per task and ten to spare
            overrides["max_connections"] = max(settings.max_connections, max_concurrency + 10)
    return replace(settings, **overrides) if overrides else settings


async def serve(
    worker: GatewayWorker,
    *,
    settings: RedisSettings | None = None,
    config: RunnerConfig | None = None,
    handle_signals: bool = True,
    health_port: int | None = None,
    health_host: str = DEFAULT_HEALTH_HOST,
    plugins: list[Plugin] | None = None,
    workspace: WorkspacePolicy | None = None,
) -> None:
    """Run ``worker`` until stopped (SIGTERM/SIGINT drain it); with ``health_port``,
    serve ``/healthz`` and ``/readyz`` on ``health_host`` (this machine only by default)
    meanwhile. ``plugins=None`` discovers them; ``workspace=None`` puts
    ``context.workspace`` where :meth:`WorkspacePolicy.from_env` says."""
    runner = WorkerRunner(worker, settings=settings, config=config, plugins=plugins)
    if workspace is not None:
        runner.executor.workspaces = Workspaces(workspace)
    try:
        if health_port is None:
            await runner.start(handle_signals=handle_signals)
        else:
            from byway.health import HealthServer

            async with HealthServer(runner, health_port, health_host):
                await runner.start(handle_signals=handle_signals)
    finally:
        await runner.release()
    if runner.fatal:  # it stopped on its own: the process must not exit 0
        raise WorkerError(f"worker {worker.worker_id} stopped: {runner.fatal}")


def run_worker(
    worker_class: str | type[GatewayWorker] | GatewayWorker,
    worker_id: str | None = None,
    redis_url: str | None = None,
    max_concurrency: int = 50,
    fetch_count: int = 10,
    consumer_group: str = "agent_engines",
    plugin_list: list[Any] | None = None,
    plugin_configurator: Any = None,
    plugin_dir: str | None = None,
    plugin_hook_timeout_seconds: float | None = None,
    *,
    redis_host: str | None = None,
    redis_port: int | None = None,
    redis_db: int | None = None,
    redis_password: str | None = None,
    redis_username: str | None = None,
    redis_max_connections: int | None = None,
    workspace_dir: str | os.PathLike[str] | None = None,
    plugin_log_hook_stats_on_shutdown: bool = True,
    **options: Any,
) -> None:
    """Blocking entry point: build the worker and serve it until SIGTERM/SIGINT.

    Redis is ``redis_url``, or by-framework's ``redis_host``/``redis_port``/``redis_db``/
    ``redis_username``/``redis_password`` (not both; with neither, ``$BYWAY_REDIS_URL``,
    else the embedded server; see :func:`redis_settings`). ``workspace_dir`` is the root
    of ``context.workspace`` (default ``$BYWAY_WORKSPACE_DIR``, else
    ``<tempdir>/byway-workspace-<uid>``). ``BYAI_WORKER_CONCURRENCY``,
    ``BYAI_WORKER_FETCH_COUNT`` and ``BYAI_REDIS_MAX_CONNECTIONS`` override the matching
    arguments. Other keyword options are :class:`RunnerConfig` fields
    (``lease_seconds``, ``drain_timeout``...). ``plugin_log_hook_stats_on_shutdown=False``
    leaves out the plugins' hook counts at shutdown.
    """
    if not isinstance(plugin_log_hook_stats_on_shutdown, bool):
        raise ConfigurationError(
            "plugin_log_hook_stats_on_shutdown: expected a bool, "
            f"got {type(plugin_log_hook_stats_on_shutdown).__name__}"
        )
    known = {f.name for f in fields(RunnerConfig)}
    unknown = set(options) - known - {"agent_types", "namespace", "key_schema"}
    if unknown:
        raise ConfigurationError(f"run_worker: unknown option(s) {', '.join(sorted(unknown))}")
    config = RunnerConfig(
        max_concurrency=_env_override("BYAI_WORKER_CONCURRENCY", max_concurrency),
        fetch_count=_env_override("BYAI_WORKER_FETCH_COUNT", fetch_count),
        consumer_group=consumer_group,
        **{k: v for k, v in options.items() if k in known},
    )
    if plugin_hook_timeout_seconds:
        config = replace(config, plugin_hook_timeout_seconds=plugin_hook_timeout_seconds)
    config = replace(config, plugin_log_hook_stats_on_shutdown=plugin_log_hook_stats_on_shutdown)
    settings = redis_settings(
        redis_url,
        default_url=BY_FRAMEWORK_REDIS_URL,
        redis_host=redis_host,
        redis_port=redis_port,
        redis_db=redis_db,
        redis_username=redis_username,
        redis_password=redis_password,
        redis_max_connections=redis_max_connections,
        max_concurrency=config.max_concurrency,
    )
    workspace = WorkspacePolicy.from_env(workspace_dir)
    overrides: dict[str, Any] = {}
    if options.get("namespace"):
        overrides["namespace"] = options["namespace"]
    if options.get("key_schema"):
        overrides["schema"] = options["key_schema"]
    if overrides:
        settings = replace(settings, **overrides)
    worker = load_worker(worker_class, worker_id=worker_id, agent_types=options.get("agent_types"))
    plugins = discover_plugins(plugin_list, plugin_configurator, plugin_dir)
    asyncio.run(
        serve(worker, settings=settings, config=config, plugins=plugins, workspace=workspace)
    )
