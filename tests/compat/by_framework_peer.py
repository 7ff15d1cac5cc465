"""The by-framework 0.2.1 side of tests/compat/test_by_framework.py.

Runs in a Python 3.12 venv that has ``by-framework==0.2.1`` (never imports Byway):

    python by_framework_peer.py send   --host H --port P --db N --agent-type T --session S --content C
    python by_framework_peer.py record --host H --port P --db N --session S --message-id M
    python by_framework_peer.py worker --host H --port P --db N --agent-type T --worker-id W --workspace DIR

``send`` sends one AskAgent with by-framework's ``GatewayClient`` (default route policy,
FAIL_FAST, with a ``WorkerRegistry``, so it checks that a worker is online and writes the
QUEUED execution record) and prints the ``SendMessageResponse`` as one JSON line.
``record`` prints the execution record of a message as by-framework's registry reads it.
``worker`` runs ``run_worker`` with an agent that streams one chunk and returns
``"hello " + content``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from typing import Any

from by_framework import (
    AgentContext,
    GatewayClient,
    GatewayWorker,
    WorkerRegistry,
    close_redis,
    init_redis,
    run_worker,
)


class PeerWorker(GatewayWorker):
    """Serves one agent type: emits the chunk ``"hello "`` then returns ``"hello " + content``."""

    def __init__(self, *args: Any, agent_type: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._agent_type = agent_type

    def get_agent_types(self) -> list[str]:
        return [self._agent_type]

    async def process_command(self, command: Any, context: AgentContext) -> Any:
        await context.emit_chunk("hello ")
        return "hello " + str(command.content)


async def _send(args: argparse.Namespace) -> dict[str, Any]:
    redis = init_redis(host=args.host, port=args.port, db=args.db)
    try:
        client = GatewayClient(registry=WorkerRegistry(redis_client=redis), redis_client=redis)
        response = await client.send_message(
            target_agent_type=args.agent_type, session_id=args.session, content=args.content
        )
        return dataclasses.asdict(response)
    finally:
        await close_redis()


async def _record(args: argparse.Namespace) -> dict[str, Any] | None:
    redis = init_redis(host=args.host, port=args.port, db=args.db)
    try:
        registry = WorkerRegistry(redis_client=redis)
        return await registry.get_execution_by_message_id(args.message_id, args.session)
    finally:
        await close_redis()


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("send", "record", "worker"):
        p = sub.add_parser(name)
        p.add_argument("--host", required=True)
        p.add_argument("--port", type=int, required=True)
        p.add_argument("--db", type=int, default=0)
        if name == "send":
            p.add_argument("--agent-type", required=True)
            p.add_argument("--session", required=True)
            p.add_argument("--content", required=True)
        elif name == "record":
            p.add_argument("--session", required=True)
            p.add_argument("--message-id", required=True)
        else:
            p.add_argument("--agent-type", required=True)
            p.add_argument("--worker-id", required=True)
            p.add_argument("--workspace", required=True)
    args = parser.parse_args()
    if args.cmd == "send":
        print(json.dumps(asyncio.run(_send(args))), flush=True)
    elif args.cmd == "record":
        print(json.dumps(asyncio.run(_record(args))), flush=True)
    else:
        run_worker(
            PeerWorker,
            worker_id=args.worker_id,
            redis_host=args.host,
            redis_port=args.port,
            redis_db=args.db,
            workspace_dir=args.workspace,
            max_concurrency=4,
            agent_type=args.agent_type,
        )
    sys.exit(0)


if __name__ == "__main__":
    main()
