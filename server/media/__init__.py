"""The SFU on aiortc: encoded forwarding, negotiation, media health, stats."""
