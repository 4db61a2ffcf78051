"""Test helpers shipped for plugin authors: the backend conformance suite, collector checks, real test servers."""
