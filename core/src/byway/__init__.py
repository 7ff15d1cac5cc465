"""Byway: a distributed scheduling engine for AI agents on Redis Streams.

Workers (``GatewayWorker`` subclasses, ``@agent`` functions, or adapted LangGraph/ADK
objects) consume per-agent-type Redis streams; clients (``GatewayClient``) send commands
and read each session's event stream. See the repository README for a tour.
"""

from __future__ import annotations

from byway.app import load_worker, run_worker, serve
from byway.client import ClientInterceptor, GatewayClient, ReloadAck, SendMessageResponse
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
    CallbackType,
    Plugin,
    PluginBuildContext,
    PluginDeclined,
    PluginError,
    PluginManager,
    PluginManifest,
    PluginRegistry,
    PluginReloadContext,
    PluginReloadResult,
    PromptTemplate,
    TaskFailure,
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
from byway.registry import ExecutionRecord, WorkerInfo, WorkerRegistry
from byway.runner import RunnerConfig, WorkerRunner
from byway.settings import RedisSettings
from byway.signing import Signer
from byway.worker import FunctionWorker, GatewayWorker, agent

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
    "BywayError",
    "CallbackType",
    "CancelMode",
    "CancelOutcome",
    "CancelTaskCommand",
    "ClientInterceptor",
    "Command",
    "ConfigurationError",
    "ConnectionError",
    "Event",
    "EventType",
    "ExecutionLog",
    "ExecutionRecord",
    "FunctionWorker",
    "GatewayClient",
    "GatewayWorker",
    "HistoryEntry",
    "HistoryStore",
    "InMemoryHistoryStore",
    "Keys",
    "LimitExceededError",
    "MessageHeader",
    "NoOnlineWorkerError",
    "Plugin",
    "PluginBuildContext",
    "PluginDeclined",
    "PluginError",
    "PluginManager",
    "PluginManifest",
    "PluginRegistry",
    "PluginReloadContext",
    "PluginReloadResult",
    "PromptTemplate",
    "ProtocolError",
    "RedisHistoryStore",
    "RedisSettings",
    "ReloadAck",
    "ReloadPluginsCommand",
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
    "TaskFailure",
    "WorkerError",
    "WorkerIdInUseError",
    "WorkerInfo",
    "WorkerRegistry",
    "WorkerRunner",
    "__version__",
    "agent",
    "command_from_dict",
    "command_to_dict",
    "load_worker",
    "run_worker",
    "serve",
]
