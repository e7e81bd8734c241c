"""`rerank-rl serve`: an HTTP API over an export folder.

requests.py   parses and bounds request bodies (every refusal is a 4xx with a message)
engines.py    what answers: a reranker export (through its bundle) or a classifier export
batching.py   gathers requests that arrive while the model is busy into one model call
app.py        the routes, served by uvicorn (default) or Ray Serve (`--ray`, ray_backend.py)
cli.py        the subcommand
"""
