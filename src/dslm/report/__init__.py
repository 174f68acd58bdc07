"""Reports: the demo's self-contained report.html (``html``) and the traces it shows (``traces``)."""
