"""`python -m meshreg.gcjob` in the gc Job (the modules are mounted from a ConfigMap as in the source tree);
`python -m meshreg.gcjob prepare` in its init container."""

import sys

from .run import main, prepare

sys.exit(prepare() if sys.argv[1:] == ["prepare"] else main())
