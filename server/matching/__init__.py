"""Matching: profiles, criteria, scoring, availability, assignment, explanations."""
