"""`python -m meshreg_gc` in the gc Job (the package is mounted under that name from a ConfigMap)."""

import sys

from .run import main

sys.exit(main())
