"""When the SQLite journal commits what: the promises resume relies on, checked in the file
itself while the run goes on (read by another connection, as another process would).

Promises: a run is in the file before its first model call is sent; no model call is sent
before the answers that came before it are committed; the run's final answer is committed
with the run's end, before anyone is told the run ended, and an answer that needs repair is
committed before the model is asked again.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from supervisor import Supervisor
from supervisor._sqlite import SQLiteStore
from workers import ModelRequest, Worker
from workers.testing import FunctionModel, reply


class Summary(BaseModel):
    verdict: str


class Writer(Worker):
    """Writes the report."""

    model = "openai:gpt-4o"


def _committed(path: Path) -> tuple[int, list[str]]:
    """The runs and the journal keys committed in the file, as another process sees them."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        runs = db.execute("SELECT count(*) FROM runs").fetchone()[0]
        keys = [row[0] for row in db.execute("SELECT key FROM calls ORDER BY key")]
    return runs, keys


async def test_a_run_and_its_answers_are_committed_before_the_next_model_call(
    tmp_path: Path,
) -> None:
    path = tmp_path / "runs.db"
    seen: dict[str, tuple[int, list[str]]] = {}
    answers = iter([{"nothing": "valid"}, {"verdict": "fine"}])  # the first answer needs repair

    def boss(request: ModelRequest) -> Any:
        if "Writer" in str(request.tools):  # the planner: its output names the workers
            seen["planner"] = _committed(path)
            step = {"id": "w", "worker": "Writer", "input": "write it", "depends_on": [], "reason": "r"}
            return reply.output({"reasoning": "one step", "steps": [step]})
        seen[f"answer{len(request.messages)}"] = _committed(path)
        return reply.output(next(answers))

    def writer(request: ModelRequest) -> Any:
        seen["writer"] = _committed(path)
        return reply.text("the report")

    store = SQLiteStore(path)
    sup = Supervisor(
        [Writer(model=FunctionModel(writer))], model=FunctionModel(boss), store=store, output=Summary
    )
    async with sup:
        result = await sup.run("report")
    assert result.output == Summary(verdict="fine")
    # At the planner's call: the run (another process asked to run it too is refused).
    assert seen["planner"] == (1, [])
    # Before the writer's call: the run, and the planner's answer.
    assert seen["writer"] == (1, ["plan1/Planner/1"])
    # Before the final answer's call: the writer's answer (the step's work is not lost).
    assert seen["answer1"] == (1, ["1/w.1/0/Writer/1", "plan1/Planner/1"])
    # Before the repair is asked for: the answer it repairs.
    assert seen["answer3"] == (1, ["1/w.1/0/Writer/1", "answer/Synthesizer/1", "plan1/Planner/1"])
    # The last answer, committed with the run's end.
    assert _committed(path) == (
        1,
        ["1/w.1/0/Writer/1", "answer/Synthesizer/1", "answer/Synthesizer/2", "plan1/Planner/1"],
    )
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT status FROM runs").fetchall() == [("succeeded",)]
