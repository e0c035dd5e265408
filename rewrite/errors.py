"""Typed errors of the rewrite library. The CLI turns each into one line and its exit code."""

from __future__ import annotations


class RewriteError(Exception):
    """Base of every error the rewrite stage reports. `exit_code` is what the CLI exits with."""

    exit_code = 1


class RewriteUsageError(RewriteError):
    """Bad input from the user: an unknown mode, no backend, a bad setting. Exit code 2."""

    exit_code = 2


class InstructionError(RewriteUsageError):
    """An instruction file that cannot be read or has no `{input}` placeholder."""


class VllmMissingError(RewriteUsageError):
    """`--rewrite-model` needs vLLM in this environment and it is not installed."""


class BackendError(RewriteError):
    """The backend as a whole failed: the server is unreachable, or does not serve the model. Exit code 1."""


class ServerUnreachableError(BackendError):
    """No connection could be made to the endpoint at all."""


class ModelNotServedError(BackendError):
    """The server answered that it does not serve the requested model name."""


class BatchFailure(RewriteError):
    """The batch finished but some of its items failed. Exit code 3, so scripts can tell it from a crash."""

    exit_code = 3


class ItemFailure(Exception):
    """One item failed (empty or non-English output, a request that kept failing). Not raised to the user:
    it becomes the item's `error`."""
