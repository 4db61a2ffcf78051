"""Test helpers shipped for plugin authors: the backend conformance suite and collector checks.

Real test servers and their fixtures are the ``pytest-daskperiment`` distribution's (a pytest plugin).
"""
