"""Local stand-ins for what cannot be reached from here: DigitalOcean, Coolify, GitHub.

Each stand-in is a stateful HTTP server that follows the vendor's contract
(auth, required fields and types, status codes, error bodies, rate limits,
asynchronous states). Phase 2 is rehearsed against them by pointing the
helpers' base URLs at them: configuration, not a separate code path.
"""
