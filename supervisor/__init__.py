"""Many workers: planning, routing, plan execution, handoffs, budgets, circuit breakers and
durable runs.

    from supervisor import Supervisor, Budget, Plan, Step

Every failure a run can end in is a subclass of `AgentError` carrying the run's `run_id` (the
tree is drawn in `tools.errors`).
"""

from tools.errors import (
    AgentError,
    ApproverFailed,
    BudgetExceeded,
    CircuitOpen,
    ConfigurationError,
    ContextOverflow,
    HandoffError,
    HandoffLoop,
    LoopDetected,
    MalformedAPIKey,
    MalformedResponse,
    MaxTurnsExceeded,
    MissingAPIKey,
    ModelNameError,
    ModelNotFound,
    ModelRefused,
    OutputValidationError,
    PlanError,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderConnectionError,
    ProviderError,
    ProviderHTTPError,
    ProviderRateLimited,
    ProviderUnavailable,
    RecordedFailure,
    ReplayMismatch,
    ResponseTruncated,
    ResumeError,
    RunAborted,
    RunNotFound,
    RunTakenOver,
    ScriptError,
    StepFailed,
    StoreError,
    StreamInterrupted,
    ToolArgumentsError,
    ToolDefinitionError,
    ToolError,
    ToolInterrupted,
    ToolTimeoutError,
    UnknownToolError,
    WorkerError,
    WorkerInputError,
)
from workers import ApprovalRequest, Decision

from ._breaker import BreakerSettings, CircuitBreaker, CircuitBreakers
from ._budget import Budget, BudgetGuard
from ._plan import Plan, Step, check_plan
from ._progress import Progress
from ._result import RunResult, StepResult
from ._store import MemoryStore, RunRecord, StepRecord, Store
from ._stream import Both
from ._supervisor import MAX_WORKERS, Supervisor
from ._terminal import TerminalApprover

__all__ = [
    "AgentError",
    "ApprovalRequest",
    "ApproverFailed",
    "Both",
    "BreakerSettings",
    "Budget",
    "BudgetExceeded",
    "BudgetGuard",
    "check_plan",
    "CircuitBreaker",
    "CircuitBreakers",
    "CircuitOpen",
    "ConfigurationError",
    "ContextOverflow",
    "Decision",
    "HandoffError",
    "HandoffLoop",
    "LoopDetected",
    "MalformedAPIKey",
    "MalformedResponse",
    "MAX_WORKERS",
    "MaxTurnsExceeded",
    "MemoryStore",
    "MissingAPIKey",
    "ModelNameError",
    "ModelNotFound",
    "ModelRefused",
    "OutputValidationError",
    "Plan",
    "PlanError",
    "PostgresStore",
    "Progress",
    "ProviderAuthError",
    "ProviderBadRequest",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderHTTPError",
    "ProviderRateLimited",
    "ProviderUnavailable",
    "RecordedFailure",
    "ReplayMismatch",
    "ResponseTruncated",
    "ResumeError",
    "RunAborted",
    "RunNotFound",
    "RunRecord",
    "RunResult",
    "RunTakenOver",
    "ScriptError",
    "SQLiteStore",
    "Step",
    "StepFailed",
    "StepRecord",
    "StepResult",
    "Store",
    "StoreError",
    "StreamInterrupted",
    "Supervisor",
    "TerminalApprover",
    "ToolArgumentsError",
    "ToolDefinitionError",
    "ToolError",
    "ToolInterrupted",
    "ToolTimeoutError",
    "UnknownToolError",
    "WorkerError",
    "WorkerInputError",
]


def __getattr__(name: str) -> object:
    # The stores (sqlite3, a writer thread; the PostgreSQL modules) load on first use:
    # `import supervisor` stays fast.
    if name == "SQLiteStore":
        from ._sqlite import SQLiteStore

        return SQLiteStore
    if name == "PostgresStore":  # psycopg itself loads when a store connects
        from ._postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module 'supervisor' has no attribute {name!r}")
