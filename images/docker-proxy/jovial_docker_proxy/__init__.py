"""Jovial's docker-proxy: the only holder of the Docker engine's socket, between the hub and the engine.

`policy` decides (pure: a call, the site's settings and the facts looked up -> allowed or the reason
why not), `settings` reads the site's choices from the environment (pure), `server` does the I/O
(an aiohttp server forwarding allowed calls to the socket, streaming the answers).
"""
