"""Several nodes sharing Redis: node heartbeats with their load, and which node holds a room."""
