"""`llmrec serve`: a fitted `llmrec.pipelines.Recommender` over HTTP (FastAPI + uvicorn), with a page at `/`.

batching.py: concurrent requests micro-batched into one scorer call. protocol.py: the request body and the
error JSON. page.py: the server-rendered page. app.py: `create_app(recommender, ServeConfig)`, the routes.
FastAPI and uvicorn are the `serve` extra (`pip install 'llmrec[serve]'`): nothing here is imported by
`import llmrec`.
"""
