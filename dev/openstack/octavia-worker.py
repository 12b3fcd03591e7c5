#!/usr/bin/python3
# octavia-worker from Debian's Octavia 11 (Zed), with oslo_log_fix applied
# first: the worker does not use eventlet, and its TaskFlow threads log
# concurrently (see oslo_log_fix.py).
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oslo_log_fix  # noqa: E402

oslo_log_fix.apply()

from octavia.cmd.octavia_worker import main  # noqa: E402

sys.exit(main())
