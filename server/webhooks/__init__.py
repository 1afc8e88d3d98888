"""Webhooks for integrations: an operator registers URLs for events (a pair published, a
meeting booked, started or ended, a fallback used, a pair flagged or gone quiet); each
delivery is signed, retried with backoff as a durable job, and listed with its outcome;
Slack and Microsoft Teams incoming webhooks are spoken natively. See docs/webhooks.md."""
