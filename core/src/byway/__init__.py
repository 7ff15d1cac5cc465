"""Byway: a distributed scheduling engine for AI agents on Redis Streams.

Workers (``GatewayWorker`` subclasses, ``@agent`` functions, or adapted LangGraph/ADK
objects) consume per-agent-type Redis streams; clients (``GatewayClient``) send commands
and read each session's event stream. See the repository README for a tour.
"""

from __future__ import annotations

from byway._log import setup_logging
from byway.app import load_worker, run_worker, serve
from byway.byai import (
    BaiYingMessage,
    BaiYingMessageRole,
    ByaiAskAgentCommand,
    ByaiContent,
    ByaiContentCodec,
    ByaiResumeCommand,
    ContentCodec,
    MessageContent,
    MessageFile,
    Resource,
    WireContent,
    deserialize_byai_content,
    serialize_byai_content,
)
from byway.byai_worker import ByaiAgentContext, ByaiAgentTask, ByaiWorker
from byway.client import (
    ByaiGatewayClient,
    CancelTaskResponse,
    ClientInterceptor,
    GatewayClient,
    GatewayInterceptor,
    ReloadAck,
    SendMessageResponse,
)
from byway.context import AgentContext
from byway.errors import (
    BywayError,
    ConfigurationError,
    ConnectionError,
    LimitExceededError,
    NoOnlineWorkerError,
    ProtocolError,
    ResumeRefusedError,
    RoutingError,
    SessionBusyError,
    TaskCancelledError,
    TaskError,
    WorkerError,
    WorkerIdInUseError,
)
from byway.flow import CancelOutcome
from byway.history import (
    ExecutionLog,
    HistoryEntry,
    HistoryStore,
    InMemoryHistoryStore,
    RedisHistoryStore,
)
from byway.keys import Keys
from byway.plugins import (
    AgentConfig,
    Plugin,
    PluginBuildContext,
    PluginDeclined,
    PluginError,
    PluginManager,
    PluginManifest,
)
from byway.protocol import (
    ActionType,
    AgentState,
    AgentTaskResult,
    ArtifactEvent,
    AskAgentCommand,
    AskUserEvent,
    CancelMode,
    CancelTaskCommand,
    Command,
    Event,
    EventType,
    MessageHeader,
    ReloadPluginsCommand,
    ResumeCommand,
    StateChangeEvent,
    StreamChunkEvent,
    command_from_dict,
    command_to_dict,
)
from byway.redis_client import Redis, close_redis, get_redis, init_redis
from byway.registry import ExecutionRecord, WorkerInfo, WorkerRegistry
from byway.runner import RunnerConfig, WorkerRunner
from byway.settings import RedisSettings
from byway.signing import Signer
from byway.worker import FunctionWorker, GatewayWorker, agent
from byway.workspace import WorkspacePolicy

__version__ = "0.1.0"

__all__ = [
    "ActionType",
    "AgentConfig",
    "AgentContext",
    "AgentState",
    "AgentTaskResult",
    "ArtifactEvent",
    "AskAgentCommand",
    "AskUserEvent",
    "BaiYingMessage",
    "BaiYingMessageRole",
    "ByaiAgentContext",
    "ByaiAgentTask",
    "ByaiAskAgentCommand",
    "ByaiContent",
    "ByaiContentCodec",
    "ByaiGatewayClient",
    "ByaiResumeCommand",
    "ByaiWorker",
    "BywayError",
    "CancelMode",
    "CancelOutcome",
    "CancelTaskCommand",
    "CancelTaskResponse",
    "ClientInterceptor",
    "Command",
    "ConfigurationError",
    "ConnectionError",
    "ContentCodec",
    "Event",
    "EventType",
    "ExecutionLog",
    "ExecutionRecord",
    "FunctionWorker",
    "GatewayClient",
    "GatewayInterceptor",
    "GatewayWorker",
    "HistoryEntry",
    "HistoryStore",
    "InMemoryHistoryStore",
    "Keys",
    "LimitExceededError",
    "MessageContent",
    "MessageFile",
    "MessageHeader",
    "NoOnlineWorkerError",
    "Plugin",
    "PluginBuildContext",
    "PluginDeclined",
    "PluginError",
    "PluginManager",
    "PluginManifest",
    "ProtocolError",
    "Redis",
    "RedisHistoryStore",
    "RedisSettings",
    "ReloadAck",
    "ReloadPluginsCommand",
    "Resource",
    "ResumeCommand",
    "ResumeRefusedError",
    "RoutingError",
    "RunnerConfig",
    "SendMessageResponse",
    "SessionBusyError",
    "Signer",
    "StateChangeEvent",
    "StreamChunkEvent",
    "TaskCancelledError",
    "TaskError",
    "WireContent",
    "WorkerError",
    "WorkerIdInUseError",
    "WorkerInfo",
    "WorkerRegistry",
    "WorkerRunner",
    "WorkspacePolicy",
    "__version__",
    "agent",
    "close_redis",
    "command_from_dict",
    "command_to_dict",
    "deserialize_byai_content",
    "get_redis",
    "init_redis",
    "load_worker",
    "run_worker",
    "serialize_byai_content",
    "serve",
    "setup_logging",
]
