"""qfjobs: background jobs for QGIS field projects, speaking QFieldCloud's API."""

__version__ = "0.1.0"
