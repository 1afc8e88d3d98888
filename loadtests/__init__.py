"""The load generator operators run before a cohort goes live: `python -m loadtests`."""
