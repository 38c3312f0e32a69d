"""Registry: the model catalog with prices, experiments and recommendations."""

from __future__ import annotations

from optimizer.clients._http import ServiceClient
from optimizer.schemas.registry import (
    ExperimentList,
    ExperimentRecorded,
    ModelList,
    ModelProfile,
    ModelSearchRequest,
    ModelSearchResult,
    Recommendation,
    RecommendationRequest,
    RecommendationResponse,
    RecordedRecommendations,
    StoredExperiment,
)


class RegistryClient(ServiceClient):
    service = "registry"

    def list_models(self, *, status: str | None = None, provider: str | None = None) -> ModelList:
        params = {k: v for k, v in {"status": status, "provider": provider}.items() if v}
        return self.call("GET", "models", ModelList, params=params)

    def get_model(self, model_id: str) -> ModelProfile:
        return self.call("GET", f"models/{model_id}", ModelProfile)

    def model_catalog(self) -> list[ModelProfile]:
        """Full profiles of every model the Registry lists, whatever their status."""
        return [self.get_model(summary.model_id) for summary in self.list_models().models]

    def search_models(self, request: ModelSearchRequest) -> ModelSearchResult:
        return self.call("POST", "models/search", ModelSearchResult, json=request.to_wire())

    def record_experiment(self, experiment: StoredExperiment) -> ExperimentRecorded:
        return self.call("POST", "experiments", ExperimentRecorded, json=experiment.to_wire())

    def list_experiments(self, *, status: str | None = None) -> list[StoredExperiment]:
        params = {"status": status} if status else None
        return self.call("GET", "experiments", ExperimentList, params=params).experiments

    def recommendations(self, request: RecommendationRequest) -> RecommendationResponse:
        """Ask for suggestions for a configuration, recording the caller's own as well."""
        return self.call(
            "POST", "recommendations", RecommendationResponse, json=request.to_wire()
        )

    def recorded_recommendations(self) -> list[Recommendation]:
        return self.call("GET", "recommendations", RecordedRecommendations).recommendations
