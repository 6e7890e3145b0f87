"""Project files on disk, under ``QFJOBS_STORAGE_DIR``.

Layout: ``projects/<project id>/files/<path>`` holds the current version of each
project file, ``projects/<project id>/tmp/`` holds uploads being received.
Every write goes to a temporary file that is renamed over the target, so a
reader (a job, a download) sees either the old or the new bytes.
"""

import hashlib
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO

CHUNK_SIZE = 1024 * 1024
#: Part size the QFieldCloud client uses for its multipart-style etag.
ETAG_PART_SIZE = 8 * 1024 * 1024


@dataclass(frozen=True)
class StoredBlob:
    size: int
    md5: str
    sha256: str
    etag: str


class Checksums:
    """MD5, SHA-256 and the client's S3-style etag of one byte stream."""

    def __init__(self) -> None:
        self.size = 0
        self._md5 = hashlib.md5()
        self._sha256 = hashlib.sha256()
        self._part_digests: list[bytes] = []
        self._part = hashlib.md5()
        self._part_size = 0

    def update(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self._md5.update(chunk)
        self._sha256.update(chunk)
        view = memoryview(chunk)
        while view:
            room = ETAG_PART_SIZE - self._part_size
            piece, view = view[:room], view[room:]
            self._part.update(piece)
            self._part_size += len(piece)
            if self._part_size == ETAG_PART_SIZE:
                self._part_digests.append(self._part.digest())
                self._part = hashlib.md5()
                self._part_size = 0

    def result(self) -> StoredBlob:
        md5 = self._md5.hexdigest()
        digests = list(self._part_digests)
        if self._part_size:
            digests.append(self._part.digest())
        if len(digests) <= 1:
            etag = md5
        else:
            etag = f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"
        return StoredBlob(self.size, md5, self._sha256.hexdigest(), etag)


def checksum_file(path: Path) -> StoredBlob:
    sums = Checksums()
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK_SIZE):
            sums.update(chunk)
    return sums.result()


class ProjectStorage:
    """The files of every project under one root directory.

    Bytes are stored once per content, as immutable blobs named by their
    SHA-256 (``projects/<id>/blobs/<sha256>``); the SQL rows map project paths
    to blobs. Replacing a file writes a new blob and then commits the row, so
    the store never points at half-written bytes, and a job can take a
    consistent snapshot of a project by linking blobs into a work folder.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def project_dir(self, project_id: uuid.UUID) -> Path:
        return self.root / "projects" / str(project_id)

    def blob_path(self, project_id: uuid.UUID, sha256: str) -> Path:
        return self.project_dir(project_id) / "blobs" / sha256

    def receive(
        self, project_id: uuid.UUID, stream: IO[bytes]
    ) -> tuple[Path, StoredBlob]:
        """Copy ``stream`` into a temporary file of the project, with checksums."""
        tmp_dir = self.project_dir(project_id) / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        sums = Checksums()
        fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="upload-")
        try:
            with os.fdopen(fd, "wb") as target:
                while chunk := stream.read(CHUNK_SIZE):
                    sums.update(chunk)
                    target.write(chunk)
                target.flush()
                os.fsync(target.fileno())
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        return Path(name), sums.result()

    def keep(self, project_id: uuid.UUID, received: Path, blob: StoredBlob) -> bool:
        """Turn a received file into the blob of its content.

        Returns whether the blob is new (False when the same bytes were
        already stored; the received file is then dropped).
        """
        target = self.blob_path(project_id, blob.sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            received.unlink(missing_ok=True)
            return False
        os.replace(received, target)
        return True

    def keep_file(self, project_id: uuid.UUID, source: Path) -> StoredBlob:
        """Store a copy of a local file (a job's result) as a blob."""
        blob = checksum_file(source)
        tmp_dir = self.project_dir(project_id) / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="result-")
        os.close(fd)
        shutil.copyfile(source, name)
        self.keep(project_id, Path(name), blob)
        return blob

    def discard(self, project_id: uuid.UUID, sha256: str) -> None:
        self.blob_path(project_id, sha256).unlink(missing_ok=True)

    def materialize(
        self,
        project_id: uuid.UUID,
        files: list[tuple[str, str]],
        target_dir: Path,
        *,
        writable: bool = False,
    ) -> None:
        """Lay out ``(path, sha256)`` files under ``target_dir``.

        Read-only snapshots hard-link the blobs (cheap, and safe because blobs
        are never written in place); ``writable`` ones copy them, for jobs
        that edit data files.
        """
        for path, sha256 in files:
            target = target_dir.joinpath(*path.split("/"))
            target.parent.mkdir(parents=True, exist_ok=True)
            source = self.blob_path(project_id, sha256)
            if writable:
                shutil.copyfile(source, target)
                continue
            try:
                os.link(source, target)
            except OSError:
                shutil.copyfile(source, target)

    def delete_project(self, project_id: uuid.UUID) -> None:
        shutil.rmtree(self.project_dir(project_id), ignore_errors=True)
