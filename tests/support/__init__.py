"""Helpers shared by the tests: fakes, test configs, schema validation, and harnesses for real parts (lab/)."""
