"""`hyv serve`: a web page and an HTTP API over one warm engine, for a team sharing one GPU box.

    serve.server   the process: options, the token rule, the lock, the HTTP server and the worker
    serve.api      the HTTP routes (docs/serve.md); serve.files: static files and videos with byte ranges
    serve.app      submit / cancel / continue / status / gallery, apart from HTTP
    serve.spec     a job request, checked by the render library before anything is queued
    serve.store    the job queue, persisted in <workdir>/serve/jobs
    serve.worker   the one thread that owns the device: batches of jobs through `render.Engine.run`
    serve.progress per-job, per-step progress from the engine's progress events
    serve.gallery  every video in the workdir with the settings that make it again
    serve/static   the page (plain HTML, CSS and JavaScript on the API; no build step)

It composes `render` (and `rewrite`, for jobs that ask for a prompt rewrite); neither imports it.
"""

DEFAULT_HOST = "127.0.0.1"  # where `hyv serve` listens (here: the CLI reads them without importing the server)
DEFAULT_PORT = 7860
