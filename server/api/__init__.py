"""REST adapters: validate at the edge, call the domain, answer JSON."""
