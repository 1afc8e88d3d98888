"""Socket.IO adapter: msgpack on the wire, payloads validated at the edge, room events out."""
