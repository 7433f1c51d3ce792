"""What several test modules share, imported as ``helpers.<module>`` (``tests/conftest.py``
puts ``tests/`` on ``sys.path``); a test module never imports another test module.

``reliability``: running attune, a scriptable 127.0.0.1 server, a process zygote, fake keys.
``reliability_workers``: what the zygote's forked children do.
``executor_fakes``: a scripted provider, a clock, a breaker and a store for the executor.
``routing``: a known history for the router tests (``calls``, ``router``, ``NOW``).
"""
