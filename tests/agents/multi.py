"""One worker process serving several of the test agents (tasks, calls, questions, groups,
cancels), for tests that run a single worker under restricted Redis credentials."""

from __future__ import annotations

from typing import Any

from byway import AgentContext, Command, GatewayWorker
from tests.agents import basic, flows

_HANDLERS = {
    "echo": basic.echo,
    "slow": basic.slow,
    "chain_a": flows.chain_a,
    "chain_b": flows.chain_b,
    "chain_c": flows.chain_c,
    "fan": flows.fan,
    "kid": flows.kid,
}


class Multi(GatewayWorker):
    def get_agent_types(self) -> list[str]:
        return list(_HANDLERS)

    async def process_command(self, command: Command, context: AgentContext) -> Any:
        return await _HANDLERS[command.header.target_agent_type].handler(command, context)
