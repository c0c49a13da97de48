"""The HTTP side: the publish API and the Server-Sent Events streams, on aiohttp."""
