"""Download helper for public speech-enhancement corpora (VoiceBank-DEMAND, DNS Challenge).

:func:`download_file` streams one URL with ``urllib`` into ``<dest>.part``, resumes an interrupted
transfer with an HTTP ``Range`` request (restarting cleanly if the server ignores it), retries
network errors with exponential back-off, checks the size announced by the server and an optional
SHA-256 / MD5, and only then renames the file into place (a failed checksum deletes the partial
file and raises :class:`ChecksumError`). :func:`extract_archive` unpacks zip / tar(.gz/.bz2/.xz)
safely (no member may escape the target folder). :func:`download_corpus` does both for a named
corpus of :data:`CORPORA`, with a marker per archive so a second call does nothing.

Checksums: the hosts publish none that we could verify here, so the table's entries carry
``sha256=None``; after a download the computed SHA-256 is written beside the archive
(``<name>.sha256``) and verified again on later calls. Pass ``sha256=``/``md5=`` to pin one.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path

__all__ = [
    "CORPORA",
    "ChecksumError",
    "DownloadError",
    "RemoteFile",
    "download_corpus",
    "download_file",
    "extract_archive",
    "file_digest",
]

_log = logging.getLogger(__name__)

_VCTK = "https://datashare.ed.ac.uk/bitstream/handle/10283/2791"
_DNS4 = "https://dns4public.blob.core.windows.net/dns4archive/datasets_fullband"


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable archive."""

    url: str
    filename: str
    sha256: str | None = None
    md5: str | None = None
    extract: bool = True


def _vctk(name: str) -> RemoteFile:
    return RemoteFile(f"{_VCTK}/{name}", name)


def _dns4(blob: str) -> RemoteFile:
    return RemoteFile(f"{_DNS4}/{blob}", blob.rsplit("/", 1)[-1])


CORPORA: dict[str, tuple[RemoteFile, ...]] = {
    # Valentini-Botinhao et al., "Noisy speech database for training speech enhancement algorithms
    # and TTS models", University of Edinburgh DataShare, doi:10.7488/ds/2117 (CC BY 4.0), 48 kHz.
    "voicebank-demand-test": (_vctk("clean_testset_wav.zip"), _vctk("noisy_testset_wav.zip")),
    "voicebank-demand": (
        _vctk("clean_testset_wav.zip"), _vctk("noisy_testset_wav.zip"),
        _vctk("clean_trainset_28spk_wav.zip"), _vctk("noisy_trainset_28spk_wav.zip"),
    ),
    # ICASSP 2022 DNS Challenge 4 (Microsoft, CC BY 4.0), full-band archives (tar.bz2, large).
    "dns4-dev-testset": (_dns4("datasets_fullband.dev_testset_000.tar.bz2"),),
    "dns4-impulse-responses": (_dns4("datasets_fullband.impulse_responses_000.tar.bz2"),),
    "dns4-noise": tuple(_dns4(f"noise_fullband/datasets_fullband.noise_fullband.{b}.tar.bz2")
                        for b in ("freesound_000", "freesound_001", "audioset_000")),
    "dns4-read-speech-000": (
        _dns4("clean_fullband/datasets_fullband.clean_fullband.read_speech_000_0.00_3.75.tar.bz2"),
    ),
}


class DownloadError(RuntimeError):
    """A download failed after all retries."""


class ChecksumError(DownloadError):
    """Downloaded bytes do not match the expected digest."""


def file_digest(path: str | Path, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _verify(path: Path, sha256: str | None, md5: str | None) -> None:
    for algo, want in (("sha256", sha256), ("md5", md5)):
        if want is not None:
            got = file_digest(path, algo)
            if got.lower() != want.lower():
                raise ChecksumError(f"{path.name}: {algo} mismatch (expected {want}, got {got})")


_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


def download_file(url: str, dest: str | Path, sha256: str | None = None, md5: str | None = None,
                  retries: int = 5, timeout: float = 60.0, backoff: float = 1.0,
                  chunk_size: int = 1 << 16, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` with resume, retries and checksum; returns ``dest``.

    An existing ``dest`` that passes the checksum (or any existing ``dest`` when none is given) is
    kept. Bytes go to ``<dest>.part`` first; an interrupted call (or a dropped connection) resumes
    from its size with ``Range: bytes=<size>-``.

    Raises:
        ChecksumError: the complete file does not match ``sha256``/``md5`` (the part file is deleted).
        DownloadError: HTTP error that is not transient, or still failing after ``retries``.
    """
    dest = Path(dest)
    if dest.exists():
        _verify(dest, sha256, md5)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    attempt = 0
    while True:
        try:
            if _fetch(url, part, timeout, chunk_size, progress, dest.name):
                break
            raise DownloadError(f"{url}: connection closed before the end of the file")
        except urllib.error.HTTPError as exc:
            if exc.code not in _RETRY_STATUS or attempt >= retries:
                raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
            err: Exception = exc
        except (urllib.error.URLError, HTTPException, OSError, DownloadError) as exc:
            if attempt >= retries:
                raise DownloadError(f"{url}: failed after {retries + 1} attempts ({exc})") from exc
            err = exc
        attempt += 1
        delay = backoff * 2 ** (attempt - 1)
        _log.warning("%s: %s; retry %d/%d in %.1f s", dest.name, err, attempt, retries, delay)
        time.sleep(delay)
    try:
        _verify(part, sha256, md5)
    except ChecksumError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    return dest


def _fetch(url: str, part: Path, timeout: float, chunk_size: int, progress: bool,
           label: str) -> bool:
    """One HTTP request appending to ``part``; True when the file is complete."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "denoisezoo-download/1", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 - http(s) URLs only
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to send: the part file is complete
            total = _total_from_content_range(exc.headers.get("Content-Range"))
            if total is None or total == have:
                return True
            part.unlink()
        raise
    with resp:
        if have and resp.status == 206:
            start = _start_from_content_range(resp.headers.get("Content-Range"))
            if start != have:
                raise DownloadError(f"{url}: server resumed at byte {start}, expected {have}")
            mode = "ab"
        else:
            if have:
                _log.info("%s: server ignored the range request, restarting", label)
            have, mode = 0, "wb"
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        bar = _progress(total, have, label) if progress else None
        got = have
        try:
            with open(part, mode) as f:
                while True:
                    try:
                        block = resp.read(chunk_size)
                    except HTTPException as exc:  # IncompleteRead on a dropped connection
                        partial = getattr(exc, "partial", b"")
                        f.write(partial)
                        got += len(partial)
                        raise DownloadError(f"{url}: transfer interrupted at byte {got}") from exc
                    if not block:
                        break
                    f.write(block)
                    got += len(block)
                    if bar is not None:
                        bar.update(len(block))
        finally:
            if bar is not None:
                bar.close()
    return total is None or got == total


def _start_from_content_range(value: str | None) -> int | None:
    # "bytes 100-199/200"
    try:
        return int(value.split()[1].split("-")[0]) if value else None
    except (IndexError, ValueError):
        return None


def _total_from_content_range(value: str | None) -> int | None:
    # "bytes */200"
    try:
        tail = value.rsplit("/", 1)[1] if value else "*"
        return None if tail == "*" else int(tail)
    except (IndexError, ValueError):
        return None


def _progress(total: int | None, initial: int, label: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
                desc=label, leave=False)


def extract_archive(archive: str | Path, target: str | Path) -> Path:
    """Unpack a zip or tar archive into ``target``; refuses members that would escape it."""
    archive, target = Path(archive), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    root = target.resolve()
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                out = (root / info.filename).resolve()
                if not out.is_relative_to(root):
                    raise DownloadError(f"{archive.name}: member {info.filename!r} escapes target")
            z.extractall(root)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as t:
            if not hasattr(tarfile, "data_filter"):  # pragma: no cover - Python < 3.10.12
                for m in t.getmembers():
                    if (not (root / m.name).resolve().is_relative_to(root) or m.issym()
                            or m.islnk() or m.isdev()):
                        raise DownloadError(f"{archive.name}: unsafe member {m.name!r}")
                t.extractall(root)
                return target
            try:  # the "data" filter refuses absolute paths, "..", devices and outside links
                t.extractall(root, filter="data")
            except tarfile.FilterError as exc:
                raise DownloadError(f"{archive.name}: unsafe member ({exc})") from exc
    else:
        raise DownloadError(f"{archive}: not a zip or tar archive")
    return target


def download_corpus(name: str, root: str | Path, files: tuple[RemoteFile, ...] | None = None,
                    extract: bool = True, keep_archives: bool = True, progress: bool = True,
                    retries: int = 5, backoff: float = 1.0) -> Path:
    """Download (and unpack) the archives of ``CORPORA[name]`` (or ``files``) into ``root``.

    Archives go to ``root/archives/``; each unpacked archive leaves ``root/.<filename>.done`` so a
    later call skips it. Returns ``root``.
    """
    if files is None:
        if name not in CORPORA:
            raise KeyError(f"unknown corpus {name!r}; known: {sorted(CORPORA)}")
        files = CORPORA[name]
    root = Path(root)
    archives = root / "archives"
    for rf in files:
        done = root / f".{rf.filename}.done"
        if done.exists():
            continue
        path = archives / rf.filename
        sidecar = path.with_name(path.name + ".sha256")
        sha = rf.sha256
        if sha is None and sidecar.exists() and path.exists():
            sha = sidecar.read_text(encoding="utf-8").split()[0]
        download_file(rf.url, path, sha256=sha, md5=rf.md5, retries=retries, backoff=backoff,
                      progress=progress)
        if not sidecar.exists():
            sidecar.write_text(f"{file_digest(path)}  {path.name}\n", encoding="utf-8")
        if extract and rf.extract:
            extract_archive(path, root)
            if not keep_archives:
                path.unlink()
        done.write_text(rf.url + "\n", encoding="utf-8")
        _log.info("%s: %s ready", name, rf.filename)
    return root

