"""``make run``: the whole service on one machine, for trying it out.

Starts a private Redis when nothing answers at ``QFJOBS_REDIS_URL``, brings
the schema up to date, then runs one worker and the development server on
http://127.0.0.1:5000 until interrupted (Ctrl-C or SIGTERM), and stops what it
started.
"""

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from urllib.parse import urlparse

from redis import Redis
from redis.exceptions import RedisError

from qfjobs.config import load_config
from qfjobs.migrations import upgrade_database
from qfjobs.processes import end_with_parent
from qfjobs.tasks.joblog import configure_process_logging

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
PORT = 5000


def redis_answers(url: str) -> bool:
    try:
        return bool(Redis.from_url(url, socket_connect_timeout=1).ping())
    except RedisError:
        return False


def start_private_redis(url: str) -> subprocess.Popen[bytes]:
    """A loopback-only redis-server without persistence, on the URL's port."""
    parsed = urlparse(url)
    if parsed.hostname not in ("127.0.0.1", "localhost", None):
        sys.exit(f"Redis at {url} does not answer, and it is not on this machine")
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed: apt-get install redis-server")
    port = str(parsed.port or 6379)
    process = subprocess.Popen(
        [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            port,
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        preexec_fn=end_with_parent,
    )
    deadline = time.monotonic() + 10
    while not redis_answers(url):
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            sys.exit(f"could not start redis-server on port {port}")
        time.sleep(0.1)
    logger.info("started a private redis-server on 127.0.0.1:%s", port)
    return process


def _stop(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


def main() -> None:
    # A process manager stops us with SIGTERM: clean up as for Ctrl-C.
    signal.signal(signal.SIGTERM, _stop)
    configure_process_logging()
    config = load_config()
    os.environ.setdefault("QFJOBS_SECRET_KEY", config["SECRET_KEY"])
    redis_url = config["QFJOBS_REDIS_URL"]
    children: list[subprocess.Popen[bytes]] = []
    if not redis_answers(redis_url):
        children.append(start_private_redis(redis_url))

    upgrade_database(config["QFJOBS_DATABASE_URL"])
    qfjobs = [sys.executable, "-m", "qfjobs.cli"]
    children.append(
        subprocess.Popen(
            [*qfjobs, "worker", "--name", f"dev-{os.getpid()}"],
            preexec_fn=end_with_parent,
        )
    )
    print(
        f"\nqfjobs API on http://{HOST}:{PORT}/api/v1/ (docs: /api/v1/docs/,"
        f" rq-dashboard: /rq/)\n"
        "Create a user in another shell:\n"
        "  .venv/bin/qfjobs create-user NAME --password PASSWORD [--superuser]\n"
        "Then: QFIELDCLOUD_URL=http://127.0.0.1:5000/api/v1/ "
        ".venv/bin/qfieldcloud-cli login NAME PASSWORD\n",
        flush=True,
    )
    server = subprocess.Popen(
        [*qfjobs, "run", "--host", HOST, "--port", str(PORT)],
        preexec_fn=end_with_parent,
    )
    children.append(server)
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()


if __name__ == "__main__":
    main()
