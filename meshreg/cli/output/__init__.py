"""One formatter per report type: text(report) for people, data(report) for -o json."""
