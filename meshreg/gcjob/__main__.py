"""`python -m meshreg.gcjob` in the gc Job (the modules are mounted from a ConfigMap as in the source tree)."""

import sys

from .run import main

sys.exit(main())
