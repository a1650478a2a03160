"""What each file of a job repository is: a job, the global variables, or data.

One rule for the validator (which walks a directory) and the reconciler (which
reads a Git tree): job files are ``.yaml``, ``.yml`` and ``.json`` files anywhere;
``variables.yaml`` at the repository's root holds the global variables; the
``files/`` folder at the root is data synced to the object store. Hidden entries,
nested ``files/`` folders and nested ``variables.yaml`` files are none of these.
"""

from __future__ import annotations

from typing import Literal

JOB_FILE_SUFFIXES = (".yaml", ".yml", ".json")
VARIABLES_FILE = "variables.yaml"
FILES_DIR = "files"

Kind = Literal["job", "variables", "file"]


def classify(relative: str) -> Kind | None:
    """The kind of the file at ``relative`` (a ``/``-separated path in the repository)."""
    parts = relative.split("/")
    if any(part.startswith(".") or not part for part in parts):
        return None
    if parts[0] == FILES_DIR:
        return "file" if len(parts) > 1 else None
    if relative == VARIABLES_FILE:
        return "variables"
    if FILES_DIR in parts[:-1] or parts[-1] == VARIABLES_FILE:
        return None
    return "job" if parts[-1].endswith(JOB_FILE_SUFFIXES) else None
