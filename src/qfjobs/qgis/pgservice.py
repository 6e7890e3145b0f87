"""Reading PostgreSQL connection service files (``pg_service.conf``).

The file is INI-like: ``[service]`` sections of libpq ``key=value`` lines,
``#`` comments. In QFieldCloud the worker gets it from the project's
``pg_service`` secret. qfjobs reads it itself instead of leaving it to libpq
so that it knows the host before connecting (to apply the host allow-list)
and so that no process-wide ``PGSERVICEFILE`` has to be set per job.

Lookup order: the explicit path, then ``$PGSERVICEFILE``. The per-user
``~/.pg_service.conf`` and ``$PGSYSCONFDIR`` are deliberately not read: a
server's home folder must not decide what a user's project connects to.
"""

import configparser
import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)


class ServiceNotFound(Exception):
    """The service is not defined; the message is libpq's wording."""


def service_file_path(explicit: Path | None) -> Path | None:
    """The service file to use, or None when there is none."""
    if explicit is not None:
        return explicit

    from_env = os.environ.get("PGSERVICEFILE")
    return Path(from_env) if from_env else None


def read_service(name: str, service_file: Path | None) -> dict[str, str]:
    """Connection parameters of service ``name``; raises :class:`ServiceNotFound`."""
    path = service_file_path(service_file)
    if path is None:
        raise ServiceNotFound(
            f'definition of service "{name}" not found (no service file configured)'
        )

    sections = _parse(path)
    if name not in sections:
        raise ServiceNotFound(f'definition of service "{name}" not found')
    return sections[name]


def _parse(path: Path) -> dict[str, dict[str, str]]:
    parser = configparser.ConfigParser(
        interpolation=None, strict=False, delimiters=("=",), comment_prefixes=("#",)
    )
    try:
        parser.read_string(path.read_text(encoding="utf-8"), source=str(path))
    except (OSError, UnicodeError, configparser.Error) as exc:
        logger.warning("Cannot read service file %s: %s", path, exc)
        raise ServiceNotFound(
            f'service file "{path.name}" cannot be read: {exc}'
        ) from exc

    return {
        section: {
            key.strip().lower(): value.strip() for key, value in parser[section].items()
        }
        for section in parser.sections()
    }
