"""Exception roots. Every error a user can cause derives from ``SsegError`` and carries one line
that names the offending file (or option) and the fix; the CLI prints that line and exits 1."""

from __future__ import annotations

from pathlib import Path


class SsegError(Exception):
    """Root of every user-facing error in ssseg."""

    def __init__(self, message: str, *, path: str | Path | None = None, fix: str | None = None):
        self.path = None if path is None else str(path)
        self.fix = fix
        parts = [f"{self.path}: {message}" if self.path else message]
        if fix:
            parts.append(fix)
        super().__init__(" — ".join(parts))


class Interrupted(Exception):
    """Ctrl-C: what was kept and the command that continues (the CLI prints it and exits 130)."""


def command_line(drop: tuple[str, ...] = ()) -> str:
    """This ssseg command line (without the options in ``drop``), quoted for a shell."""
    import shlex
    import sys

    return shlex.join(["ssseg", *(a for a in sys.argv[1:] if a not in drop)])


def invoked_command() -> str | None:
    """This process's ssseg command line, or None when ssseg was called from Python (another program's argv)."""
    import sys

    return command_line() if sys.argv and sys.argv[0].replace("\\", "/").endswith(("ssseg", "ssseg/__main__.py")) \
        else None


def continue_command() -> str:
    """This command line with --resume: how an interrupted or stopped job continues."""
    return command_line(drop=("--resume",)) + " --resume"


class ConfigError(SsegError):
    """A bad option, config file or combination of options."""


class DataError(SsegError):
    """A dataset that cannot be read: missing or unreadable files, bad labels, size mismatches."""


class CheckpointError(SsegError):
    """A checkpoint that is truncated, foreign or from an incompatible version."""


class NotAvailableError(SsegError):
    """A command or method registered in the CLI whose implementation has not landed yet."""


class ExportError(SsegError):
    """An export that cannot start or whose artifacts fail their checks (operators, parity, engine build)."""


class ModelError(SsegError):
    """A model directory whose model.json is missing, malformed, from another version, or whose files
    do not match it (hash, TensorRT version, GPU)."""


class BackendError(SsegError):
    """An inference backend that cannot run what it was given (batch outside the profile, wrong frames,
    device out of memory)."""


class ReportError(SsegError):
    """A folder that is not a label job or a run, or files in it that cannot be read."""


class LabelError(SsegError):
    """A labeling job that cannot start (options the model cannot honour, an output folder written with
    other settings) or an input that cannot be labeled."""


def filesystem_error(e: OSError) -> SsegError:
    """An OSError from writing or reading ssseg's files as one line naming the path and the fix. Every file
    is written under a temporary name and renamed, so what was written before is intact."""
    import errno

    path = e.filename or None
    reason = e.strerror or str(e)
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = ("free space there (or choose another --out), then run the same command again (train and label: "
               "with --resume; what was written before is intact)")
    elif e.errno == errno.EROFS:
        fix = "the file system is read-only: choose a writable --out"
    elif e.errno in (errno.EACCES, errno.EPERM):
        fix = "choose a --out you can write to, or fix the permissions there"
    elif e.errno in (errno.ENOTDIR, errno.EEXIST):
        reason, fix = "a file is where a folder is needed", "--out names a folder: choose another path or move the file"
    elif e.errno == errno.EISDIR:
        fix = "a folder is where a file is expected: pass the file's path"
    else:
        fix = "check that path and the disk, then run the command again"
    return SsegError(reason[0].lower() + reason[1:], path=path, fix=fix)
