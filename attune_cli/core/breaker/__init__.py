"""Circuit breakers per provider/model and per endpoint, shared by every attune process.

Two kinds of key live side by side:

* ``provider/model`` (``anthropic/claude-sonnet-4-5``): trips on the rules below, on outages
  only (``counts_as_failure``: status first, error kind second, via ``failures.classify``).
* ``endpoint:BASE_URL`` (``endpoint:http://127.0.0.1:11434/v1``): one base URL that could not
  be reached (connection refused, DNS, no connection within the connect timeout). Its first
  failure opens it, so every model behind a dead server is skipped without a network attempt
  instead of tripping one model breaker after another. The executor reports only
  reachability to it: any response, even a 503, is a success; half-open probing is as for
  models, and a closed endpoint's successes are not written (nothing to count).

The state of each breaker is a row in ``telemetry.db`` (table ``breakers``) plus the recent
outcomes of its calls (``breaker_events``), so a provider that one process saw failing is
avoided by all of them. States::

    closed ──(failure rate ≥ threshold over the window with ≥ min_calls,
    │          or a run of consecutive failures)──▶ open
    open ──(open period over)──▶ half_open (derived: stored as "open" with open_until passed)
    half_open ──one probe at a time (a lease in the store)──▶ success: closed (counts reset)
                                                         └─▶ failure: open again, longer

* Open rejects a call with ``BreakerOpenError(key, retry_after_s)`` before any network access.
* The open period doubles on each re-open (``open_base_s · 2ⁿ`` capped at ``open_max_s``) and
  is never shorter than the server's ``Retry-After``.
* Half-open admits ONE probe across all processes: the first caller writes a lease
  (``probe_owner``, ``probe_lease_until``); the others are rejected until the probe answers or
  the lease expires (the probing process died or hung).
* Every read-decide-write is one ``BEGIN IMMEDIATE`` transaction. A decision that writes nothing
  (a closed breaker lets a call through, an open one rejects it) is a plain read, so the common
  path never waits for the write lock.
* ``generation`` is bumped on every transition (trip, re-open, close, reset). A permit remembers
  the generation it was issued under; a result arriving under another generation is stale and
  changes nothing. So a call that started before a trip can never close a breaker that another
  process re-opened, and failures from before a recovery are not counted after it.
* Neutral outcomes (caller errors, rate limits, cancellation — see ``counts_as_failure``) change
  nothing; a probe with a neutral outcome only hands its lease back.
* Times are wall-clock epoch seconds from an injectable clock, comparable across processes.
* If the store cannot be read or written (read-only, locked past the timeout, corrupt, newer
  schema), calls go ahead (``Permit(degraded=True)``) and ``on_warning`` is told once: the
  breaker must never become the outage.
"""
