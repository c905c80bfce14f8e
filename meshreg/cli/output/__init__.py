"""One formatter per report type: text(report) for people, data(report) the versioned document of -o json and
-o yaml (document.py, docs/output.md)."""
