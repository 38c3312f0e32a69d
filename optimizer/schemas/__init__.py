"""Every payload the optimizer reads or writes, in one module tree.

Models are grouped by the service that owns the payload; the request record, which every
extractor produces and every analysis reads, lives in `records`. The optimizer's own domain
types sit here too, below everything that uses them: `analysis` (results), `applications`
(usage profiles), `loads` (a warehouse load) and `events` (what is announced).
"""

from optimizer.schemas.governance import (
    BudgetAlertData,
    CostRecord,
    CostRecorded,
    CostSummary,
    Policy,
    PolicyEvaluation,
    PolicyEvaluationRequest,
)
from optimizer.schemas.observatory import (
    LogSearchPage,
    LogSearchRequest,
    MetricQueryResult,
    ThresholdExceededData,
    Trace,
)
from optimizer.schemas.records import REQUEST_ARROW_SCHEMA, REQUEST_COLUMNS, RequestRecord
from optimizer.schemas.registry import (
    ExperimentRequest,
    ExperimentResultData,
    ModelProfile,
    Recommendation,
    RecommendationRequest,
    RecommendationResponse,
    StoredExperiment,
)
from optimizer.schemas.routing import RoutingConfig, RoutingConfigState, RoutingConfigUpdate
from optimizer.schemas.sentinel import AnomalyInsights, AnomalyReport, SentinelAlertData

__all__ = [
    "REQUEST_ARROW_SCHEMA",
    "REQUEST_COLUMNS",
    "AnomalyInsights",
    "AnomalyReport",
    "BudgetAlertData",
    "CostRecord",
    "CostRecorded",
    "CostSummary",
    "ExperimentRequest",
    "ExperimentResultData",
    "LogSearchPage",
    "LogSearchRequest",
    "MetricQueryResult",
    "ModelProfile",
    "Policy",
    "PolicyEvaluation",
    "PolicyEvaluationRequest",
    "Recommendation",
    "RecommendationRequest",
    "RecommendationResponse",
    "RequestRecord",
    "RoutingConfig",
    "RoutingConfigState",
    "RoutingConfigUpdate",
    "SentinelAlertData",
    "StoredExperiment",
    "ThresholdExceededData",
    "Trace",
]
