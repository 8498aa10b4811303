"""End-to-end jobs as library functions: what `llmrec evaluate` and `llmrec recommend` do, callable from code.

`run_evaluation(EvaluateConfig(...))` loads, splits, builds the candidates, fits the scorer and evaluates;
`recommend(RecommendConfig(...))` ranks one user's candidates with an LLM ranker;
`Recommender.load(RecommenderConfig(...))` fits any scorer once and answers top-k queries for known users or
histories of item ids (`llmrec recommend --scorer`, and the HTTP service `llmrec serve`). The commands in
`llmrec/commands/` only parse arguments into these configs and print the results; `llmrec.experiment` and the
demo call these functions, never the command line.
"""

from llmrec.pipelines.evaluate import EvaluateConfig, run_evaluation
from llmrec.pipelines.recommend import (
    HeldOut,
    Query,
    QueryError,
    Recommendation,
    RecommendConfig,
    RecommendedItem,
    Recommender,
    RecommenderConfig,
    UserRecommendations,
    recommend,
)

__all__ = [
    "EvaluateConfig", "HeldOut", "Query", "QueryError", "RecommendConfig", "RecommendedItem", "Recommendation",
    "Recommender", "RecommenderConfig", "UserRecommendations", "recommend", "run_evaluation",
]
