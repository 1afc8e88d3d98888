"""The domain core: rooms, participants, presence, media modes, chat, and room events.

Plain Python: no web framework. Adapters (signaling, api, media) call in; room events
flow out on the EventBus.
"""
