"""The app's local services and processes: compose, connectivity, health, jobs, the app run."""
