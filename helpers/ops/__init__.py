"""Day-2 operations on production: backups, the restore drill, rollback, logs, monitoring, teardown, doctor.

A layer between the cloud steps (``helpers.cloud``: what phase 2 built) and the runner: each module here
works on what phase 2 recorded (the state file's droplet, databases and applications), through the vendors'
clients and the server's SSH session, and backs one notebook of ``notebooks/operations/``.
"""
