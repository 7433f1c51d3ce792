"""``attune serve``: a local OpenAI- and Anthropic-compatible gateway over attune's core.

An optional extra (``pip install 'attune-cli[serve]'``: Starlette and uvicorn), imported only by
the ``attune serve`` command. Point an SDK's base URL at it (``OPENAI_BASE_URL=http://127.0.0.1:
4680/v1``, ``ANTHROPIC_BASE_URL=http://127.0.0.1:4680``) and every call is routed, protected by
the circuit breaker, retried and recorded, with no change to the calling code.

    shapes.py   the two APIs' JSON: requests in; answers, stream events and errors out
    access.py   loopback-only by default; the bearer token of ``--require-token``
    gateway.py  the thread/queue bridge from the event loop to the synchronous core
    app.py      the Starlette routes
    server.py   uvicorn: sockets, workers, graceful shutdown
"""
