"""The HTTP edge: aiohttp handlers that parse, call the core, and format."""
