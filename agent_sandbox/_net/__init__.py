"""The filtered network: allow rules and the address decision, what the network looks like
inside, the namespace helper that makes sockets there, the proxy, DNS responder, relay and
I/O loop that serve it from outside, wire parsing and the decision log. Imports only the
base modules (``_errors``, ``_say``)."""
