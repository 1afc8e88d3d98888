"""Meetings of a pair: proposed, accepted, moved, cancelled, recurring; .ics invites,
private calendar feeds and reminders, sent through durable jobs."""
