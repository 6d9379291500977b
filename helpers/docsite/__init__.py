"""The published runbook: MkDocs hooks, generated pages, the reference run."""
