"""Production: the droplet, SSH, server setup, Coolify (install, project, databases, apps), GitHub, checks."""
