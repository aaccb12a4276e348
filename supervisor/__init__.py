"""Many workers: planning, routing, plan execution, budgets, approvals, persistence, tracing.

Every failure a run can end in is a subclass of `AgentError` (the tree is drawn in
`tools.errors`).
"""

from tools.errors import (
    AgentError,
    ConfigurationError,
    MissingAPIKey,
    ModelNameError,
    ProviderError,
)

__all__ = [
    "AgentError",
    "ConfigurationError",
    "MissingAPIKey",
    "ModelNameError",
    "ProviderError",
]
