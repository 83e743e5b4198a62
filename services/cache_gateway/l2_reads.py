"""Counting the L2 reads the gateway makes (issue 14: "L2 reads per page load in steady state: 0").

A pymongo command listener: every ``find``, ``aggregate``, ``count`` or
``getMore`` command the gateway's client sends is one L2 read; the change
stream's own ``aggregate``/``getMore`` are left out (they are the feed, not
a read on behalf of a request). Attach with
``AsyncMongoClient(..., event_listeners=[counter])``; ``GetStats`` reports
``reads``.
"""

from __future__ import annotations

from pymongo import monitoring

READ_COMMANDS = frozenset({"find", "aggregate", "count", "countDocuments", "distinct", "getMore"})


class L2ReadCounter(monitoring.CommandListener):
    def __init__(self) -> None:
        self.reads = 0
        self._streams: set[int] = set()  # cursor ids of change streams
        self._opening: set[int] = set()  # request ids of change-stream aggregates awaiting their reply

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command_name
        if name not in READ_COMMANDS:
            return
        command = event.command
        if name == "aggregate" and any("$changeStream" in stage for stage in command.get("pipeline", ())):
            self._opening.add(event.request_id)
            return
        if name == "getMore" and command.get("getMore") in self._streams:
            return
        self.reads += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        if event.request_id in self._opening:
            self._opening.discard(event.request_id)
            cursor = (event.reply or {}).get("cursor") or {}
            if cursor.get("id"):
                self._streams.add(cursor["id"])

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._opening.discard(event.request_id)
