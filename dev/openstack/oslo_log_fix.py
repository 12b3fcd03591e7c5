"""Backport of a later oslo.log fix, for daemons that do not use eventlet.

Debian 12's oslo.log (5.0.1) swaps the logging module's locks for
eventlet-based ones as soon as eventlet has been *imported*, even in a process
that never monkey-patches: octavia-worker, and the APIs under uWSGI. When two
native threads then log at once, one of them dies in "greenlet.error: cannot
switch to a different thread" and its work hangs for good (seen here: a load
balancer stuck in PENDING_CREATE, octavia-worker's TaskFlow threads). Later
oslo.log swaps the locks only when eventlet has patched threading; so does
apply(). In a monkey-patched process (nova-api) it changes nothing.

Call apply() before oslo.log is set up (see wsgi.py, octavia-worker.py).
"""


def apply():
    from oslo_log import log
    from oslo_utils import eventletutils

    original = log._fix_eventlet_logging

    def fix_only_when_patched():
        if eventletutils.is_monkey_patched('thread'):
            original()

    log._fix_eventlet_logging = fix_only_when_patched
