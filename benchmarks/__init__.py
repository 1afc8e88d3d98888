"""`make bench`: each module here measures one thing against a baseline in the same run.

A benchmark module defines `TITLE` and `async def run(quick: bool) -> str` returning a
Markdown section (tables, ratios, and the command that reproduces it).
"""
