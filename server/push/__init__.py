"""Web push: notifications to a person's browsers through the standard Web Push protocol
(RFC 8030, payloads encrypted per RFC 8291, the server identified by VAPID, RFC 8292), and
each person's choice of channels (email, push) for reminders and new messages."""
