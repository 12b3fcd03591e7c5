#!/usr/bin/python3
# nova-compute's entry point, run from Debian's python3-nova. The nova-compute
# package itself is not installed: it pulls in qemu and libvirt, and the test
# cloud uses the fake virt driver (compute_driver = fake.FakeDriver).
import sys

from nova.cmd.compute import main

sys.exit(main())
