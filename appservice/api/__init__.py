"""The provisioning HTTP API (aiohttp) and its OpenAPI document."""
