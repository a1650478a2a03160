"""The bytes of an export and the documents of an import: JSON, YAML and ZIP.

An export document is a job definition with two more keys, ``placeholders`` (the
secrets it needs) and ``metadata`` (who exported it, when, from which commit). Bytes
are deterministic: the same document gives the same bytes, and a ZIP's entries are
sorted and dated with the export's own time. On import, ``placeholders`` and
``metadata`` are set aside and the rest is validated as a job file.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from ruamel.yaml import YAML

from vecron.errors import DocumentSyntaxError, UsageError
from vecron.spec.layout import JOB_FILE_SUFFIXES
from vecron.spec.loader import Loc, load_text

Format = Literal["json", "yaml"]
FORMATS: tuple[Format, ...] = ("json", "yaml")
ENVELOPE_KEYS = ("placeholders", "metadata")
MAX_ZIP_MEMBER_BYTES = 64 * 1024 * 1024  # a job file is kilobytes; refuse zip bombs


def suffix(fmt: Format) -> str:
    return ".json" if fmt == "json" else ".yaml"


def format_of(path: str | Path) -> Format:
    """The format a file's name says: ``.json`` is JSON, anything else YAML."""
    return "json" if str(path).lower().endswith(".json") else "yaml"


def dumps(data: Any, fmt: Format) -> bytes:
    """``data`` as UTF-8 bytes, keys in their given order, ending in a newline."""
    if fmt == "json":
        return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode()
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    yaml.allow_unicode = True
    yaml.width = 4096  # no folded lines: a long URL stays one line
    buffer = io.StringIO()
    yaml.dump(data, buffer)
    return buffer.getvalue().encode()


def job_file_name(name: str, stamp: datetime, fmt: Format) -> str:
    """``job-{name}-{timestamp}.json``; the timestamp is UTC to the second."""
    return f"job-{name}-{stamp.strftime('%Y%m%dT%H%M%SZ')}{suffix(fmt)}"


def write_zip(members: Sequence[tuple[str, bytes]], when: datetime) -> bytes:
    """A ZIP of ``members`` (name, bytes), sorted by name, each dated ``when``."""
    buffer = io.BytesIO()
    stamp = when.timetuple()[:6]
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in sorted(members):
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return buffer.getvalue()


# --- reading ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class InputDocument:
    """One job document found in an import input.

    ``shown`` names its file (``bundle.zip:job-a.json`` for a ZIP member), ``label`` the
    document (``jobs.json[2]`` inside an array); ``prefix`` is the document's location
    in the file's data, for line numbers; ``error`` a syntax error that stopped reading.
    """

    shown: str
    label: str
    text: str
    prefix: Loc = ()
    data: Any = None
    error: DocumentSyntaxError | None = field(default=None)

    @property
    def definition(self) -> Any:
        """The document without its export envelope (``placeholders``, ``metadata``)."""
        if isinstance(self.data, Mapping):
            return {k: v for k, v in self.data.items() if k not in ENVELOPE_KEYS}
        return self.data

    @property
    def metadata(self) -> Mapping[str, Any]:
        meta = self.data.get("metadata") if isinstance(self.data, Mapping) else None
        return meta if isinstance(meta, Mapping) else {}


def read_inputs(paths: Sequence[Path]) -> list[InputDocument]:
    """Every job document in ``paths``: JSON or YAML files (one job, or an array of
    jobs) and ZIP files of them. Raises :class:`OSError` for a missing file."""
    documents: list[InputDocument] = []
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
        if zipfile.is_zipfile(path):
            documents.extend(_zip_documents(path))
        else:
            text = path.read_bytes().decode("utf-8-sig", errors="replace")
            documents.extend(_documents(str(path), text, format_of(path)))
    return documents


def _zip_documents(path: Path) -> Iterator[InputDocument]:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise UsageError(f"{path}: not a readable ZIP file ({exc})") from None
    with archive:
        for info in sorted(archive.infolist(), key=lambda i: i.filename):
            member = PurePosixPath(info.filename)
            hidden = any(part.startswith((".", "__MACOSX")) for part in member.parts)
            if info.is_dir() or hidden or not member.name.endswith(JOB_FILE_SUFFIXES):
                continue
            if info.file_size > MAX_ZIP_MEMBER_BYTES:
                raise UsageError(f"{path}:{info.filename}: larger than a job file can be")
            text = archive.read(info).decode("utf-8-sig", errors="replace")
            yield from _documents(f"{path}:{info.filename}", text, format_of(member.name))


def _documents(shown: str, text: str, fmt: Format) -> Iterator[InputDocument]:
    try:
        data = load_text(text, json_file=fmt == "json")
    except DocumentSyntaxError as exc:
        yield InputDocument(shown=shown, label=shown, text=text, error=exc)
        return
    if isinstance(data, list):
        for index, item in enumerate(data):
            yield InputDocument(
                shown=shown, label=f"{shown}[{index}]", text=text, prefix=(index,), data=item
            )
    else:
        yield InputDocument(shown=shown, label=shown, text=text, data=data)
