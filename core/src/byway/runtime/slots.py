"""The runner's slots: what runs here, what waits for a slot, what must run alone.

Intake reads only as many entries as there are free slots; recovery keeps every entry
held here fresh and hands back what did not finish. Both read this object (public), not
the runner.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from byway.context import AgentContext
    from byway.protocol import AskAgentCommand, ResumeCommand

__all__ = ["Running", "Slots", "Start"]

#: an entry to start: stream, entry id, command, the command's JSON as read
Start = tuple[str, str, "AskAgentCommand | ResumeCommand", bytes]


@dataclass(slots=True)
class Running:
    """A task this runner is executing."""

    context: AgentContext
    stream: str
    entry_id: str
    agent_type: str
    task: asyncio.Task[None] | None = None
    #: the handler returned (or raised): from here on only bookkeeping runs, and a cancel
    #: must not interrupt it
    handler_done: bool = False
    #: its previous run died with its worker: it runs alone
    suspect: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.context.session_id, self.context.message_id)


class Slots:
    """Running tasks, the backlog waiting for a slot, and the quarantine of suspects."""

    def __init__(self, max_concurrency: int) -> None:
        self.max_concurrency = max_concurrency
        #: what runs here, by (session id, message id): a message id is unique only
        #: within its session
        self.running: dict[tuple[str, str], Running] = {}
        #: tasks read (or taken back) that wait for a free slot
        self.backlog: list[Start] = []
        #: tasks whose last run died with its worker, each to run alone
        self.quarantine: list[Start] = []
        #: a suspect runs now (alone)
        self.suspect_running = False

    def free(self) -> int:
        """Slots for new tasks: none while a suspect runs alone or waits to."""
        if self.suspect_running or self.quarantine:
            return 0
        return max(0, self.max_concurrency - len(self.running))

    def add(self, running: Running, *, suspect: bool = False) -> None:
        self.running[running.key] = running
        running.suspect = suspect
        if suspect:
            self.suspect_running = True

    def remove(self, running: Running) -> None:
        if self.running.get(running.key) is running:
            del self.running[running.key]
        if running.suspect:
            self.suspect_running = False

    def in_flight(self) -> dict[str, list[str]]:
        """Every entry this runner holds (running, waiting, quarantined), by stream."""
        by_stream: dict[str, list[str]] = defaultdict(list)
        for running in self.running.values():
            by_stream[running.stream].append(running.entry_id)
        for stream, entry_id, *_ in self.backlog:
            by_stream[stream].append(entry_id)
        for stream, entry_id, *_ in self.quarantine:
            by_stream[stream].append(entry_id)
        return by_stream

    def take_waiting(self) -> list[tuple[str, str]]:
        """Empty the backlog and the quarantine; returns their (stream, entry id)s."""
        unfinished: list[tuple[str, str]] = [(s, e) for s, e, *_ in self.backlog]
        unfinished += [(s, e) for s, e, *_ in self.quarantine]
        self.backlog.clear()
        self.quarantine.clear()
        return unfinished
