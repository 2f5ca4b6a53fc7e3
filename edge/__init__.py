"""Edge layer: the WebSocket fan-out of quotes and alerts from Redis to browsers and apps.

Pure parts (no I/O, unit-tested alone): `claims` (token claims check), `roles` (who sees which
alert), `protocol` (client messages in, frames out), `subscriptions` (symbol -> connections),
`conflation` (a client's bounded pending queue). I/O: `tokens` (PyJWT and the secret file),
`reader` (the one XREAD BLOCK loop of a process), `hub` (connections and flushing), `health`,
`server` (picows, the console's static files).
"""
