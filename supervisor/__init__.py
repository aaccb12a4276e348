"""Many workers: planning, routing, plan execution, handoffs, budgets and circuit breakers.

    from supervisor import Supervisor, Budget, Plan, Step

Every failure a run can end in is a subclass of `AgentError` carrying the run's `run_id` (the
tree is drawn in `tools.errors`).
"""

from tools.errors import (
    AgentError,
    BudgetExceeded,
    CircuitOpen,
    ConfigurationError,
    HandoffError,
    HandoffLoop,
    MissingAPIKey,
    ModelNameError,
    PlanError,
    ProviderError,
    RunAborted,
    StepFailed,
)
from workers import ApprovalRequest, Decision

from ._breaker import BreakerSettings, CircuitBreaker, CircuitBreakers
from ._budget import Budget, BudgetGuard
from ._plan import Plan, Step, check_plan
from ._result import RunResult, StepResult
from ._supervisor import MAX_WORKERS, Supervisor
from ._terminal import TerminalApprover

__all__ = [
    "MAX_WORKERS",
    "AgentError",
    "ApprovalRequest",
    "BreakerSettings",
    "Budget",
    "BudgetExceeded",
    "BudgetGuard",
    "CircuitBreaker",
    "CircuitBreakers",
    "CircuitOpen",
    "ConfigurationError",
    "Decision",
    "HandoffError",
    "HandoffLoop",
    "MissingAPIKey",
    "ModelNameError",
    "Plan",
    "PlanError",
    "ProviderError",
    "RunAborted",
    "RunResult",
    "Step",
    "StepFailed",
    "StepResult",
    "Supervisor",
    "TerminalApprover",
    "check_plan",
]
