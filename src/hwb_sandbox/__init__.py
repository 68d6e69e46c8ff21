"""Sandbox national Hwb API (protocol v1) for rehearsing provisioning without touching live accounts.

Its own package: it imports nothing from ``hwb_client``, so it can stand in for the national service in
the client's tests and in an LA's rollover rehearsal. Run it with ``hwb-sandbox serve``.
"""

__version__ = "0.1.0"
