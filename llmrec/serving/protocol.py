"""What the service accepts and answers, apart from the logic: the request body and the error JSON.

Every error is `{"error": "<one line>", "field": "<the part of the request at fault>"}` with a 4xx status:
404 unknown user; 422 unknown item ids, k out of range, an empty history, a malformed or unknown body field;
413 body too large; 401 missing or wrong API key. The success JSON is `UserRecommendations.to_dict()`:
`{"user", "items": [{"item_id", "title", "score", "components"?}]}` (components for hybrids).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# status of each QueryError kind (llmrec.pipelines.recommend.QueryError)
QUERY_ERROR_STATUS = {"unknown_user": 404, "unknown_items": 422, "empty": 422, "out_of_range": 422,
                      "unsupported": 422}


class RecommendationRequest(BaseModel):
    """POST /recommendations: a history of raw item ids (oldest first) and how many items to return. Unknown
    fields are refused rather than silently dropped."""

    model_config = ConfigDict(extra="forbid")

    history: list[int | str] = Field(description="raw item ids as in the data files, oldest first")
    k: int | None = Field(None, description="how many items to return (default 10, or the server's max_k if lower)")


def error_body(message: str, field: str | None) -> dict[str, Any]:
    return {"error": message, "field": field}


def validation_error_body(errors: list[dict[str, Any]]) -> dict[str, Any]:
    """The first of pydantic's errors as one line naming its field (`k`, `history`, `body` …)."""
    if not errors:
        return error_body("invalid request", None)
    e = errors[0]
    # the location without the request part and without the union branch tried last (history.0.int -> history.0)
    loc = [str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path", "int", "str")]
    if e.get("type") == "json_invalid":
        return error_body(f"the body is not valid JSON: {e.get('msg', '')}", "body")
    name = loc[0] if loc else "body"
    where = ".".join(loc) or "body"
    if e.get("type") == "extra_forbidden":
        return error_body(f"unknown field {where!r}: the body takes history and k", name)
    if e.get("type") == "missing":
        return error_body(f"{where}: required", name)
    msg = "an item id should be a number or a string" if name == "history" and len(loc) > 1 else e.get("msg", "invalid")
    return error_body(f"{where}: {msg} (got {e.get('input')!r})"[:300], name)
