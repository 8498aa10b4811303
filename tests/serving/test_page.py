"""The page at `/`, rendered by a real browser: Debian's headless Chromium loads it from a running server and
the test reads the DOM it dumps (the form; a user's history titles and top K with component scores; a pasted
history; an error shown on the page). Skips where /usr/bin/chromium is absent (CI installs it with apt-get)."""

from __future__ import annotations

import re
import subprocess
from html import unescape
from pathlib import Path
from urllib.parse import urlencode

import pytest
from serve_helpers import running_server

from llmrec.pipelines import Recommender, RecommenderConfig
from llmrec.serving.app import ServeConfig, create_app

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="the page test needs headless Chromium at /usr/bin/chromium: apt-get install -y chromium",
)


def dump_dom(url: str, profile: Path) -> str:
    """The DOM after Chromium loaded `url` (no sandbox: tests run as root in containers)."""
    out = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-extensions", f"--user-data-dir={profile}", "--dump-dom", url],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0 and "<html" in out.stdout, out.stderr[-2000:]
    return out.stdout


def rows(dom: str) -> list[list[str]]:
    """The cells' text of each row of the top-K table."""
    body = re.search(r'<table id="top">.*?<tbody>(.*?)</tbody>', dom, re.S).group(1)
    return [[unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)]
            for tr in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)]


def test_the_page_in_headless_chromium(fixtures, tmp_cache, hybrid_yaml, tmp_path):
    rec = Recommender.load(RecommenderConfig(dataset="ml-100k", scorer=f"hybrid:{hybrid_yaml}", max_k=20),
                           str(fixtures))
    app = create_app(rec, ServeConfig())
    with running_server(app) as url:
        empty = dump_dom(f"{url}/", tmp_path / "p0")
        assert '<form method="get" action="/" id="query">' in empty
        assert all(f'name="{n}"' in empty for n in ("user", "history", "k")) and 'id="top"' not in empty
        assert '<option value="1">' in empty  # the user box offers the data set's users

        dom = dump_dom(f"{url}/?{urlencode({'user': '1', 'k': '3'})}", tmp_path / "p1")
        expected = rec.recommend(rec.query_user("1", 3))
        history = re.search(r'<section id="history">(.*?)</section>', dom, re.S).group(1)
        assert "History of user 1: 6 items" in history
        assert [unescape(t) for t in re.findall(r"<li[^>]*>(.*?)</li>", history)] == [t for _, t in expected.history]
        head = re.search(r"<thead>(.*?)</thead>", dom, re.S).group(1)
        assert [re.sub(r"<[^>]+>", "", h) for h in re.findall(r"<th[^>]*>.*?</th>", head)] == \
            ["#", "item id", "title", "score", "pop", "itemknn"]
        table = rows(dom)
        assert [r[2] for r in table] == [it.title for it in expected.items]
        assert [float(r[5]) for r in table] == pytest.approx([it.components["itemknn"] for it in expected.items], rel=1e-3)
        assert 'value="1"' in dom  # the form keeps the query

        dom = dump_dom(f"{url}/?{urlencode({'history': '1, 3 8', 'k': '2'})}", tmp_path / "p2")
        assert "History of the given history: 3 items" in dom
        assert [r[2] for r in rows(dom)] == [it.title for it in rec.recommend(rec.query_history("1 3 8", 2)).items]

        dom = dump_dom(f"{url}/?{urlencode({'history': '1, 404, <b>x</b>'})}", tmp_path / "p3")
        err = re.search(r'<p class="error" id="error" data-field="history">(.*?)</p>', dom, re.S)
        assert err and "unknown item ids in the history: 404, &lt;b&gt;x&lt;/b&gt;" in err.group(1)  # escaped
        assert "<b>x</b>" not in dom and 'id="top"' not in dom
