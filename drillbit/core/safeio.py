"""Safe file I/O at the edge: writes that never clobber, reads that never hang or wander.

Writing (``write_text``, ``write_bytes``): only a regular file is ever written, and only by
writing a temporary file in the same directory and renaming it over the target (a crash never
leaves half a file, and a reader never sees one). A target that is a symlink, a directory, a
FIFO, a socket or a device is refused with a ``ConfigError`` (exit 2, one line); a missing
parent directory likewise. The temporary file never outlives the call.

Reading (``open_regular``, ``read_bytes``, ``read_text``, ``walk``): regular files only, opened
without following a symlink and without blocking (a FIFO is reported, never waited on); inside a
root directory (a run directory) no path may lead out of it. ``walk`` lists a tree's regular files
and reports everything else (symlinks, FIFOs, sockets, devices) instead of following or opening it.

Permission problems are ``PermissionDenied`` (exit 4, "permission denied: PATH").
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from drillbit.core.errors import ConfigError, EnvironmentFailure, PermissionDenied

__all__ = [
    "NotRegularFile",
    "Tree",
    "check_output_path",
    "kind_of",
    "open_regular",
    "read_bytes",
    "read_text",
    "remove",
    "walk",
    "write_bytes",
    "write_text",
]

log = logging.getLogger(__name__)

#: the most bytes a reader takes from one input file (a run's JSON, an experiment, a profile)
MAX_READ = 256 * 1024 * 1024


class NotRegularFile(ConfigError):
    """A path that should be a regular file is something else (or leads out of its root)."""

    def __init__(self, path: Path | str, kind: str, fix: str = "pass a regular file") -> None:
        self.kind = kind
        super().__init__(str(path), f"is {kind}, not a regular file: {fix}")


def kind_of(mode: int) -> str:
    """What an ``st_mode`` is, in words ("a directory", "a FIFO", ...)."""
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISLNK, "a symlink"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISREG, "a regular file")):  # fmt: skip
        if test(mode):
            return name
    return "a special file"


def _denied(path: Path | str) -> PermissionDenied:
    return PermissionDenied(str(path))


# -- writing -------------------------------------------------------------------------------------


def check_output_path(path: Path) -> Path:
    """Raise ``ConfigError`` unless ``path`` may be written: its parent is an existing directory and
    it is absent or a regular file (never a symlink, whatever it points to)."""
    path = Path(path)
    parent = path.parent
    try:
        pst = os.stat(parent)
    except FileNotFoundError:
        raise ConfigError(str(path), f"its directory {parent} does not exist: create it or choose another "
                                     "path") from None
    except NotADirectoryError:
        raise ConfigError(str(path), f"{parent} is not a directory: choose another path") from None
    except PermissionError:
        raise _denied(parent) from None
    if not stat.S_ISDIR(pst.st_mode):
        raise ConfigError(str(path), f"{parent} is not a directory: choose another path")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return path
    except PermissionError:
        raise _denied(path) from None
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFile(path, kind_of(st.st_mode), "drillbit writes only regular files: choose another path")
    return path


def write_bytes(path: Path, data: bytes, *, mode: int = 0o644) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file in the same directory, then rename)."""
    path = check_output_path(Path(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except PermissionError:
        raise _denied(path.parent) from None
    except OSError as err:
        raise _os_failure(path, err) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        check_output_path(path)  # it may have changed meanwhile; rename never writes through a link anyway
        os.replace(tmp, path)
    except PermissionError:
        raise _denied(path) from None
    except OSError as err:
        raise _os_failure(path, err) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return path


def write_text(path: Path, text: str, *, mode: int = 0o644) -> Path:
    return write_bytes(path, text.encode("utf-8"), mode=mode)


def _os_failure(path: Path, err: OSError) -> Exception:
    if err.errno in (errno.EROFS, errno.EISDIR, errno.ENOTDIR, errno.EINVAL, errno.EXDEV, errno.ENAMETOOLONG):
        return ConfigError(str(path), f"cannot be written ({os.strerror(err.errno or 0)}): choose another path")

    return EnvironmentFailure(f"{path}: cannot be written: {os.strerror(err.errno or 0)}")


def remove(path: Path) -> bool:
    """Remove a file or a symlink (never what it points to) if it exists; a directory is a ConfigError."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(st.st_mode):
        raise NotRegularFile(path, "a directory", "drillbit removes only files it wrote: remove it yourself")
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    except PermissionError:
        raise _denied(path) from None
    return True


# -- reading -------------------------------------------------------------------------------------


def _inside(path: Path, root: Path) -> bool:
    try:
        Path(os.path.realpath(path)).relative_to(os.path.realpath(root))
    except ValueError:
        return False
    return True


@contextlib.contextmanager
def open_regular(path: Path, *, root: Path | None = None) -> Iterator[BinaryIO]:
    """Open ``path`` for reading if it is a regular file: never follows a final symlink, never
    blocks on a FIFO, and (with ``root``) never leads out of ``root`` through a linked directory.

    Raises ``FileNotFoundError`` when absent, ``NotRegularFile`` for anything else, and
    ``PermissionDenied`` when it may not be read."""
    path = Path(path)
    if root is not None and not _inside(path.parent, root):
        raise NotRegularFile(path, f"outside {root} (through a symlink)", "remove the link")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
    except PermissionError:
        raise _denied(path) from None
    except IsADirectoryError:
        raise NotRegularFile(path, "a directory") from None
    except NotADirectoryError:
        raise FileNotFoundError(errno.ENOENT, "no such file", str(path)) from None
    except OSError as err:
        if err.errno == errno.ELOOP:  # O_NOFOLLOW on a symlink
            raise NotRegularFile(path, "a symlink", "pass the file itself") from None
        if err.errno in (errno.ENXIO, errno.EOPNOTSUPP):  # a socket, a FIFO without a writer on some systems
            raise NotRegularFile(path, "a special file") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(path, kind_of(st.st_mode))
        os.set_blocking(fd, True)
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with f:
        yield f


def read_bytes(path: Path, *, root: Path | None = None, limit: int = MAX_READ) -> bytes:
    """The bytes of a regular file (see ``open_regular``); larger than ``limit`` is a ConfigError."""
    with open_regular(path, root=root) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ConfigError(str(path), f"larger than {limit // (1024 * 1024)} MiB: not an input drillbit reads")
    return data


def read_text(path: Path, *, root: Path | None = None, limit: int = MAX_READ) -> str:
    """UTF-8 text of a regular file; other bytes are a ConfigError naming the file."""
    data = read_bytes(path, root=root, limit=limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(str(path), f"not UTF-8 text (byte {err.start}): save it as UTF-8") from None


@dataclass
class Tree:
    """What ``walk`` found: regular files (relative "/" paths -> Path) and everything else it skipped."""

    files: dict[str, Path] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # relative path -> what it is ("a symlink", ...)


def walk(root: Path, exclude: tuple[str, ...] = ()) -> Tree:
    """Every regular file under ``root``, recursively, following no symlink; the rest is reported."""
    root = Path(root)
    tree = Tree()
    pending = [root]
    while pending:
        here = pending.pop()
        try:
            entries = sorted(os.scandir(here), key=lambda e: e.name)
        except PermissionError:
            raise _denied(here) from None
        for entry in entries:
            rel = Path(entry.path).relative_to(root).as_posix()
            if rel in exclude:
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed while we looked
            if stat.S_ISDIR(st.st_mode):
                pending.append(Path(entry.path))
            elif stat.S_ISREG(st.st_mode):
                tree.files[rel] = Path(entry.path)
            else:
                tree.skipped[rel] = kind_of(st.st_mode)
    tree.files = dict(sorted(tree.files.items()))
    tree.skipped = dict(sorted(tree.skipped.items()))
    if tree.skipped:
        log.info("%s: skipped %d entries that are not regular files: %s", root, len(tree.skipped),
                 ", ".join(f"{k} ({v})" for k, v in tree.skipped.items()))  # fmt: skip
    return tree
