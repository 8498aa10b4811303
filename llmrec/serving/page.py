"""The page at `/`: a form (a user of the data set, or a history of item ids) and, after it is sent, the
history's titles and the top K with each component's score. Server-rendered HTML, no JavaScript: the form is a
plain GET to `/`, so every view has its own URL. Everything shown is escaped.
"""

from __future__ import annotations

from html import escape
from typing import Any

from llmrec.pipelines.recommend import UserRecommendations

SHOWN_HISTORY = 20  # the history's most recent titles on the page (the rest are counted)

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 64em; padding: 0 1em; color: #222; }
h1 { font-size: 1.4em; margin-bottom: .2em; } h2 { font-size: 1.1em; margin-top: 1.6em; }
.meta { color: #555; margin-top: 0; } code { background: #f3f3f3; padding: 0 .25em; }
form { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-end; background: #f7f7f9; padding: 1em;
       border: 1px solid #ddd; border-radius: 6px; }
fieldset { border: none; margin: 0; padding: 0; } legend { font-weight: 600; padding: 0; }
textarea { width: 24em; } input[type=number] { width: 5em; }
button { padding: .4em 1.2em; }
.error { color: #a00; background: #fee; border: 1px solid #fbb; padding: .6em; border-radius: 4px; }
table { border-collapse: collapse; width: 100%; } th, td { padding: .3em .6em; border-bottom: 1px solid #e4e4e4; }
th { text-align: left; background: #fafafa; } td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
ol.history { columns: 2; color: #333; }
"""


def render_page(
    info: dict[str, Any],
    users: list[Any],
    *,
    user: str = "",
    history: str = "",
    k: int | str = 10,
    result: UserRecommendations | None = None,
    error: str | None = None,
    error_field: str | None = None,
) -> str:
    """The whole page. `info`: `Recommender.info()`; `users`: ids offered in the user box's list; `result` or
    `error`: what the last query gave (neither for the empty form)."""
    e = escape
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>llmrec · {e(str(info['dataset']))}</title><style>{STYLE}</style></head><body>",
        "<h1>llmrec recommendations</h1>",
        f'<p class="meta" id="meta">data set <b>{e(str(info["dataset"]))}</b> · scorer <code>{e(str(info["scorer"]))}'
        f"</code> · {info['users']} users · {info['items']} items · ranks {e(str(info['candidates']))}</p>",
        _form(users, user, history, k, info["max_k"]),
    ]
    if error:
        field = f' data-field="{e(error_field)}"' if error_field else ""
        parts.append(f'<p class="error" id="error"{field}>{e(error)}</p>')
    if result is not None:
        parts.append(_history(result))
        parts.append(_top(result))
    parts.append("</body></html>")
    return "\n".join(parts)


def _form(users: list[Any], user: str, history: str, k: int | str, max_k: int) -> str:
    e = escape
    options = "".join(f'<option value="{e(str(u))}">' for u in users)
    return (
        '<form method="get" action="/" id="query">'
        '<fieldset><legend>A user of the data set</legend>'
        f'<label>user id <input name="user" id="user" list="users" value="{e(user)}" size="10"></label>'
        f'<datalist id="users">{options}</datalist></fieldset>'
        '<fieldset><legend>or a history of item ids, oldest first</legend>'
        f'<textarea name="history" id="history-ids" rows="2" placeholder="e.g. 50, 172, 181">{e(history)}</textarea>'
        "</fieldset>"
        f'<label>top <input name="k" id="k" type="number" min="1" max="{max_k}" value="{e(str(k))}"></label>'
        '<button type="submit">Recommend</button></form>'
    )


def _history(result: UserRecommendations) -> str:
    e = escape
    hist = result.history
    shown = hist[-SHOWN_HISTORY:]
    who = f"user {e(str(result.user))}" if result.user is not None else "the given history"
    more = f"; the last {len(shown)}" if len(shown) < len(hist) else ""
    rows = "".join(f'<li data-item-id="{e(str(i))}">{e(t)}</li>' for i, t in shown)
    return (f'<section id="history"><h2>History of {who}: {len(hist)} items{more}, oldest first</h2>'
            f'<ol class="history">{rows}</ol></section>')


def _top(result: UserRecommendations) -> str:
    e = escape
    names = list(dict.fromkeys(n for it in result.items for n in (it.components or {})))
    head = "".join(f'<th class="num component">{e(n)}</th>' for n in names)
    rows = []
    for r, it in enumerate(result.items, 1):
        comps = it.components or {}
        cells = "".join(f'<td class="num component">{comps[n]:.4g}</td>' if n in comps else '<td class="num"></td>'
                        for n in names)
        rows.append(f'<tr class="rec" data-item-id="{e(str(it.item_id))}"><td class="num">{r}</td>'
                    f'<td>{e(str(it.item_id))}</td><td class="title">{e(it.title)}</td>'
                    f'<td class="num">{it.score:.4g}</td>{cells}</tr>')
    note = f" of {result.n_ranked} items ranked (the history excluded)"
    return (f'<section id="recommendations"><h2>Top {len(result.items)}{note}</h2>'
            '<table id="top"><thead><tr><th class="num">#</th><th>item id</th><th>title</th>'
            f'<th class="num">score</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></section>')
