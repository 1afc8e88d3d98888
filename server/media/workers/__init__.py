"""The SFU in worker processes: the channel, the worker process, the main side pool."""
