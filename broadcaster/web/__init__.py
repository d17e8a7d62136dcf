"""broadcaster's web face: the aiohttp service, its HTTP API and the web page."""
