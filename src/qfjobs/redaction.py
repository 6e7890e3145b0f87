"""Removing secrets (database passwords, auth configs) from text.

Datasource strings of QGIS layers can hold ``password='...'``, ``authcfg=``
ids or ``user:password@`` in URLs; none of that may reach logs, job output,
feedback or API answers.
"""

import re

REDACTED = "***"

_PATTERNS = (
    # key=value and key='value' pairs in PostgreSQL conninfo / QGIS URIs
    re.compile(r"""(?i)\b(password|passwd|pwd|authcfg)\s*=\s*'(?:[^'\\]|\\.)*'"""),
    re.compile(r'''(?i)\b(password|passwd|pwd|authcfg)\s*=\s*"(?:[^"\\]|\\.)*"'''),
    re.compile(r"""(?i)\b(password|passwd|pwd|authcfg)\s*=\s*[^\s'"&|]+"""),
)
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*):[^/\s@]*@")


def redact_secrets(text: str) -> str:
    for pattern in _PATTERNS:
        text = pattern.sub(lambda match: f"{match.group(1)}={REDACTED}", text)
    return _URL_CREDENTIALS.sub(rf"\1:{REDACTED}@", text)
