"""Notes for the person at the terminal, and the ones that must be shown even when quiet.

Core code tells the CLI what is happening through an ``on_notice(text)`` callback: routing
choices, retries, fallbacks. Most of it is progress a quiet run (``ask`` in a pipe, ``-q``)
leaves out. A ``Caution`` is a note that something went wrong around the call — its telemetry
was not recorded, the circuit breakers are off — which a person must see once however quiet
the run: it is a ``str``, so every callback takes it, and the CLI tells it apart.
"""

from __future__ import annotations


class Caution(str):
    """A note that must be shown even in a quiet run (see the module docstring)."""

    __slots__ = ()
