"""The pure core: wire formats, channel rules, errors, settings, grants, the registry and
the fan-out. Nothing here imports asyncio, websockets or redis."""
