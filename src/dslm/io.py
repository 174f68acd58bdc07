"""Atomic file and directory writes: nothing already written is lost.

A file is written to a temporary name in the same folder, flushed to disk, then
renamed over the target (``os.replace`` is atomic on POSIX). A directory (a
checkpoint) is built under a temporary name, then swapped in: the old directory is
first renamed to ``<name>.old`` and removed only after the new one is in place, so at
every instant either ``<name>`` or ``<name>.old`` is a complete checkpoint
(:func:`resolve_directory` finds it after a crash between the two renames).
A failed write (full disk, exception, kill) leaves the previous target untouched.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from dslm.errors import DSLMError, first_line


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _explain(exc: OSError, target: Path) -> DSLMError:
    if exc.errno == errno.ENOSPC:
        return DSLMError(f"no space left on device while writing {target}; "
                         "the previous version was kept")
    return DSLMError(f"could not write {target}: {exc.strerror or exc}; "
                     "the previous version was kept")


#: Fragments of the messages torch / safetensors raise (as RuntimeError or their own
#: error types) when the bytes cannot be written: a full disk seen through a C++ stream.
_WRITE_FAILURES = ("unexpected pos", "PytorchStreamWriter failed", "file write failed",
                   "No space left", "Input/output error", "Read-only file system",
                   "Permission denied", "IoError", "I/O error")


def write_failure(exc: BaseException, target: Path) -> DSLMError | None:
    """A one-line DSLMError for an OS or serialisation failure while writing ``target``
    (None when ``exc`` is not one)."""
    if isinstance(exc, DSLMError):
        return None
    if isinstance(exc, OSError):
        return _explain(exc, target)
    text = str(exc)
    if any(f in text for f in _WRITE_FAILURES) and not isinstance(exc, (KeyboardInterrupt, SystemExit)):
        first = first_line(exc, 160)
        hint = "the disk is probably full; " if "unexpected pos" in text or "space" in text else ""
        return DSLMError(f"could not write {target} ({exc.__class__.__name__}: {first}); "
                         f"{hint}the previous version was kept")
    return None


def describe_os_error(exc: OSError, action: str = "write") -> str:
    """``could not write <file>: <reason>`` with a hint for the common causes."""
    where = exc.filename if exc.filename is not None else "a file"
    reason = exc.strerror or str(exc)
    hints = {errno.ENOSPC: " (the disk is full)", errno.EROFS: " (read-only file system)",
             errno.ENAMETOOLONG: " (choose a shorter name)",
             errno.EACCES: " (no permission; choose another output)",
             errno.ENOTDIR: " (a path component is a file, not a folder)",
             errno.EISDIR: " (it is a folder, a file was expected)"}
    return f"could not {action} {where}: {reason}{hints.get(exc.errno, '')}"


# ------------------------------------------------------------ output checks, up front

def ensure_folder(path: str | Path) -> Path:
    """Create folder ``path`` (and its parents) or raise a one-line DSLMError."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise DSLMError(f"output folder {path} is an existing file; choose a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DSLMError(describe_os_error(e, "create the folder")) from None
    return path


def _check_name_lengths(path: Path) -> None:
    try:
        name_max = os.pathconf(_existing_parent(path), "PC_NAME_MAX")
        path_max = os.pathconf(_existing_parent(path), "PC_PATH_MAX")
    except (OSError, ValueError):
        name_max, path_max = 255, 4096
    for part in path.parts:
        if len(os.fsencode(part)) > name_max:
            raise DSLMError(f"output name '{part[:40]}...' is {len(os.fsencode(part))} bytes long; "
                            f"this file system allows {name_max}: choose a shorter name")
    if len(os.fsencode(os.path.abspath(path))) + 64 > path_max:
        raise DSLMError(f"output path {str(path)[:60]}... is too long for this file system "
                        f"({path_max} bytes at most): choose a shorter one")


def _existing_parent(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _probe(folder: Path) -> None:
    try:
        fd, tmp = tempfile.mkstemp(prefix=".dslm-write-probe.", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise DSLMError(describe_os_error(e, "write into") if e.filename else
                        f"cannot write into {folder}: {e.strerror or e}") from None


def check_output_folder(path: str | Path) -> Path:
    """Before any long work: ``path`` is (or can be made) a writable folder."""
    path = Path(path)
    _check_name_lengths(path)
    ensure_folder(path)
    _probe(path)
    return path


def check_output_file(path: str | Path) -> Path:
    """Before any long work: ``path`` names a file that can be written (its folder is
    created and probed; an existing folder of that name is refused)."""
    path = Path(path)
    if str(path).endswith(os.sep) or path.is_dir():
        raise DSLMError(f"output file {path} is an existing folder; name a file")
    _check_name_lengths(path)
    ensure_folder(path.parent if str(path.parent) else Path("."))
    _probe(path.parent if str(path.parent) else Path("."))
    if path.exists() and not os.access(path, os.W_OK):
        raise DSLMError(f"output file {path} is not writable")
    return path


def _real(path: str | Path) -> Path:
    return Path(os.path.realpath(os.path.abspath(path)))


def check_disjoint(out: str | Path, inputs: dict[str, str | Path | None], what: str = "--out") -> None:
    """Refuse an output that is, lies inside, or contains one of the command's inputs.

    ``inputs`` maps a description ("the checkpoint", "the samples file") to a path;
    non-local names (hub ids) and None are ignored. Paths are compared resolved
    (symbolic links followed), so two spellings of one folder are the same folder.
    """
    o = _real(out)
    known = [(name, p, _real(p)) for name, p in inputs.items()
             if p is not None and str(p) != "" and Path(p).exists()]
    for name, p, i in known:
        if o == i:
            raise DSLMError(f"{what} {out} is {name} itself; a command never writes onto its "
                            "own input: choose another output")
    for name, p, i in known:
        if i in o.parents:
            raise DSLMError(f"{what} {out} lies inside {name} ({p}); a command never writes "
                            "into its own input: choose another output")
    for name, p, i in known:
        if o in i.parents:
            raise DSLMError(f"{what} {out} contains {name} ({p}), one of its own inputs; "
                            "writing there could destroy it: choose another output")


# ------------------------------------------------------------ debris of crashed writers

def _tmp_owner_alive(tmp_name: str, name: str) -> bool:
    """Whether the process that named a temporary ``.<name>.<pid>.<rand>.tmp`` still runs."""
    middle = tmp_name[len(name) + 2:-len(".tmp")]
    pid_text = middle.split(".", 1)[0]
    if not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def clean_debris(path: str | Path) -> list[Path]:
    """Remove what a killed writer of ``path`` left: ``.<name>.*.tmp`` temporaries of dead
    processes, and ``<name>.old`` when ``<name>`` itself is complete. Returns what went."""
    path = Path(path)
    gone: list[Path] = []
    parent = path.parent
    if not parent.is_dir():
        return gone
    try:
        entries = list(parent.glob(f".{glob_escape(path.name)}.*.tmp"))
    except OSError:
        return gone
    for tmp in entries:
        if _tmp_owner_alive(tmp.name, path.name):
            continue
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
            gone.append(tmp)
    old = path.with_name(path.name + ".old")
    if old.is_dir() and path.is_dir():
        shutil.rmtree(old, ignore_errors=True)
        gone.append(old)
    return gone


def glob_escape(name: str) -> str:
    import glob

    return glob.escape(name)


def jsonl_lines_tolerant(text: str, path: Path, error: type[DSLMError] = DSLMError,
                         hint: str = "") -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) of every non-blank line of a JSON-lines ``text`` written
    by appending. A last line without its newline that does not parse is what a writer
    killed mid-append leaves: it is skipped with a note. Any other bad line raises
    ``error`` naming the line (``hint`` is appended to the message)."""
    import sys

    lines = text.splitlines()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield n, json.loads(line)
        except ValueError:
            if n == len(lines) and not text.endswith("\n"):
                print(f"dslm: note: {path} ends in a torn line (a crash mid-write); skipped it",
                      file=sys.stderr)
                continue
            raise error(f"{path} line {n} is not valid JSON{hint}") from None


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_debris(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise _explain(e, path) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def resolve_directory(path: str | Path) -> Path:
    """``path`` itself, or ``<path>.old`` left by a crash in the middle of a swap."""
    path = Path(path)
    old = path.with_name(path.name + ".old")
    if not path.exists() and old.is_dir():
        return old
    return path


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory; on success it replaces ``path`` atomically.

    On any error (including a full disk) the temporary directory is removed and the
    previous ``path`` is left as it was.
    """
    path = Path(path)
    ensure_folder(path.parent)
    clean_debris(path)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp",
                                    dir=path.parent))
    except OSError as e:
        raise _explain(e, path) from None
    old = path.with_name(path.name + ".old")
    try:
        yield tmp
        for f in tmp.rglob("*"):
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        _fsync_dir(tmp)
        if old.exists():
            if path.exists():
                shutil.rmtree(old)
            else:  # a crash left only the old copy: keep it as the current one
                os.replace(old, path)
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
        if old.exists():
            shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if not path.exists() and old.exists():
            os.replace(old, path)
        raise _explain(e, path) from None
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if not path.exists() and old.exists():
            os.replace(old, path)
        failure = write_failure(e, path)
        if failure is not None:
            raise failure from None
        raise
