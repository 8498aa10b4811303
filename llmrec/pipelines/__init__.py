"""End-to-end jobs as library functions: what `llmrec evaluate` and `llmrec recommend` do, callable from code.

`run_evaluation(EvaluateConfig(...))` loads, splits, builds the candidates, fits the scorer and evaluates;
`recommend(RecommendConfig(...))` ranks one user's candidates with an LLM ranker. The commands in
`llmrec/commands/` only parse arguments into these configs and print the results; `llmrec.experiment` and the
demo call these functions, never the command line.
"""

from llmrec.pipelines.evaluate import EvaluateConfig, run_evaluation
from llmrec.pipelines.recommend import HeldOut, Recommendation, RecommendConfig, recommend

__all__ = ["EvaluateConfig", "HeldOut", "RecommendConfig", "Recommendation", "recommend", "run_evaluation"]
