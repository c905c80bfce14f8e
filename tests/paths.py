"""Where the tests find the repository and the shared data beside it."""

import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
