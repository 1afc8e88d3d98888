"""Helpers the tests share: real services, real server processes."""
