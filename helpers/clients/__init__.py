"""HTTP clients of the vendors' APIs (DigitalOcean, Coolify, GitHub) and their one error family."""
