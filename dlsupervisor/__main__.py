"""`python -m dlsupervisor`."""

import sys

from dlsupervisor.cli import main

sys.exit(main())
