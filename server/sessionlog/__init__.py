"""Mentoring pairs and the log of their sessions."""
