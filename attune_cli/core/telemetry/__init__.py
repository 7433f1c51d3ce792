"""Where calls are kept, and the figures read from them.

* ``records`` — what one call is (``CallRecord``), filters, times, checks on given values.
* ``store`` — the ``CallStore``/``BreakerStore`` protocols and which backend a home uses.
* ``sqlite`` — the embedded store (``TelemetryStore``), ``db`` its connections and schema.
* ``postgres`` — the team store on PostgreSQL.
* ``rollups`` — hourly figures kept in the same transaction as the rows.
* ``importers`` — reading other tools' logs into a store.
* ``team`` and ``spool`` — opening the configured store, and the calls that wait when it is down.
"""
