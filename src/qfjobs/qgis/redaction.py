"""Removing secrets from datasource text, URLs and error messages.

The reference stores DB passwords in ``project_details`` (section 7, bug 16);
qfjobs never does. :func:`redact` masks:

* ``password=``, ``passwd=``, ``pwd=``, ``authcfg=``, tokens and API keys, in
  conninfo form (``password='x'``) and in URL-query form (``&password=x&``);
* ``Authorization`` HTTP headers (``http-header:Authorization=...``);
* the password of ``scheme://user:password@host`` URLs, also percent-encoded.

:func:`redact_values` additionally masks known secret values (for example
the password a connection used) wherever they appear in an error message.
"""

import re
from collections.abc import Iterable
from urllib.parse import unquote

MASK = "***"

_SECRET_KEYS = (
    r"password|passwd|pwd|pass|authcfg|api_?key|access_?token|token|secret"
    r"|(?:http-header:)?authorization"
)
_QUOTED_SECRET = re.compile(
    rf"(?i)(?<![\w-])((?:{_SECRET_KEYS})\s*=\s*)(['\"])((?:\\.|(?!\2).)*)\2"
)
_BARE_SECRET = re.compile(
    rf"(?i)(?<![\w-])((?:{_SECRET_KEYS})\s*=\s*)(?!['\"])([^\s&|'\"]*)"
)
_URL_USERINFO = re.compile(r"(?i)([a-z][a-z0-9+.-]*://[^:/@\s'\"?#]*):([^@/\s'\"]*)@")
_ENCODED_USERINFO = re.compile(
    r"(?i)(%3A%2F%2F[^%/@\s'\"&]*(?:%[0-9A-F]{2}[^%/@\s'\"&]*)*?%3A)(.*?)(%40)"
)


def redact(text: str | None) -> str:
    """Return ``text`` with every secret it carries replaced by ``***``."""
    if not text:
        return text or ""

    masked = _QUOTED_SECRET.sub(
        lambda m: f"{m.group(1)}{m.group(2)}{MASK}{m.group(2)}", text
    )
    masked = _BARE_SECRET.sub(
        lambda m: f"{m.group(1)}{MASK}" if m.group(2) else m.group(0), masked
    )
    masked = _URL_USERINFO.sub(lambda m: f"{m.group(1)}:{MASK}@", masked)
    return _ENCODED_USERINFO.sub(lambda m: f"{m.group(1)}{MASK}{m.group(3)}", masked)


def redact_values(text: str, secrets: Iterable[str | None]) -> str:
    """Mask the given secret values, then apply :func:`redact`."""
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, MASK)
    return redact(text)


def secret_values(text: str | None) -> list[str]:
    """The secret values :func:`redact` would mask in ``text``.

    Used to mask them in text derived from ``text`` (a resolved file path, an
    error message) where the key or URL shape that gave them away is lost.
    """
    if not text:
        return []
    found = [m.group(3) for m in _QUOTED_SECRET.finditer(text)]
    found += [m.group(2) for m in _BARE_SECRET.finditer(text)]
    found += [m.group(2) for m in _URL_USERINFO.finditer(text)]
    found += [unquote(m.group(2)) for m in _ENCODED_USERINFO.finditer(text)]
    return [value for value in found if value]
