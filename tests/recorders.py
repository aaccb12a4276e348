"""An event sink that keeps every event, for assertions on what a run did."""

from __future__ import annotations

from typing import Any

from workers import Event


class Events:
    """Keeps every event it is sent; `of(kind)` picks those of one type."""

    def __init__(self) -> None:
        self.seen: list[Event] = []

    def emit(self, event: Event) -> None:
        self.seen.append(event)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.seen if isinstance(e, kind)]
