"""The runbook's documentation site (MkDocs), and the reference run whose outputs it publishes.

=====================================  =============================================================
:mod:`~helpers.docsite.hooks`          the MkDocs hooks (``docs/hooks/runbook.py`` re-exports them)
:mod:`~helpers.docsite.taskpages`      which file each task's page is rendered from; the navigation
:mod:`~helpers.docsite.markdown`       generated Markdown: missing-task pages, ``<!-- runbook:... -->``
:mod:`~helpers.docsite.pagehtml`       a notebook page's HTML: banner, TOC, no CDN, no dead links
:mod:`~helpers.docsite.mermaid`        Mermaid served by the site (``npm pack``, cached)
:mod:`~helpers.docsite.reference`      the reference run: the runner itself, in a disposable setting
:mod:`~helpers.docsite.publish`        a runner run folder made fit for the site, checked, listed
:mod:`~helpers.docsite.published`      what the site reads: the manifest and the published runs
:mod:`~helpers.docsite.__main__`       ``python -m helpers.docsite reference-run | fetch-mermaid | status``
=====================================  =============================================================
"""
