"""Fake data written by the tests and benchmarks: never shipped in the package."""
