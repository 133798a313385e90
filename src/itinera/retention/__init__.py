"""Retention: background sweepers that delete what has outlived its policy."""
