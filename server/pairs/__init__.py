"""The mentoring pair: its members, its status and the room that is theirs.

Shared vocabulary: matching publishes pairs, rooms ask whether a room is a pair's and
who belongs to it, the session log, meetings and the console read them. Plain Python and
SQLAlchemy Core: no web framework.
"""
