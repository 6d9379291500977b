"""The app repository's files: env files, package.json, docs, references, git, workflow, production files."""
