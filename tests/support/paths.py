"""Where the tests find the repository and the shared data beside it."""

import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
