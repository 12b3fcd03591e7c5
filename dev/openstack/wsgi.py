# The WSGI file uWSGI loads for Keystone, Placement, Nova and Octavia: the
# packaged WSGI script named in $KAAS_WSGI_SCRIPT (e.g.
# /usr/bin/keystone-wsgi-public), with oslo_log_fix applied first.
import os
import runpy
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oslo_log_fix  # noqa: E402

oslo_log_fix.apply()
application = runpy.run_path(os.environ['KAAS_WSGI_SCRIPT'])['application']
