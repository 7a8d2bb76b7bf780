"""The user's own labels and notes on features, kept beside the feature caches, one file per
dictionaries hash (a feature id means nothing for other dictionaries):
``<cache dir>/notes/notes-<dictionaries hash>.json``.

The file is plain, versioned JSON::

    {"format": "othello-tui notes", "version": 1, "dictionaries_hash": "…",
     "notes": {"L2M845": {"label": "…", "notes": "…"}, …}}

It is written whole under a temporary name and renamed into place, so a reader never sees half
a file. A file that is not this format, or is for other dictionaries, raises
:class:`NotesError` saying so, and is never written over. No Textual, no torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from othello_tui.json_store import read_versioned, write_atomically

FORMAT = "othello-tui notes"
VERSION = 1
MARK = "✎"  # what marks a label as the user's wherever labels are shown


class NotesError(ValueError):
    """A notes file that cannot be read as this format, or belongs to other dictionaries."""


@dataclass(frozen=True)
class Note:
    label: str
    notes: str = ""

    def shown(self) -> str:
        """The label as lists show it: ``"✎ flips c-4"`` (the notes when there is no label)."""
        return f"{MARK} {self.label or self.notes}"

    def matches(self, words: list[str]) -> bool:
        """Every word (lower case) in the label or the notes."""
        text = f"{self.label} {self.notes}".lower()
        return all(word in text for word in words)


def notes_path(folder: Path, dictionaries_hash: str) -> Path:
    return Path(folder) / "notes" / f"notes-{dictionaries_hash}.json"


def any_notes(folder: Path) -> bool:
    """Whether ``folder`` holds notes on any dictionaries' features (no hash needed to ask)."""
    pattern = notes_path(folder, "*")
    return any(pattern.parent.glob(pattern.name))


class NoteStore:
    """The notes of one set of dictionaries, read from and saved to ``path``."""

    def __init__(self, path: Path, dictionaries_hash: str, notes: dict[str, Note] | None = None):
        self.path, self.dictionaries_hash = path, dictionaries_hash
        self._notes = dict(notes or {})

    @classmethod
    def open(cls, folder: Path, dictionaries_hash: str) -> NoteStore:
        """The notes saved for ``dictionaries_hash`` in ``folder`` (none yet: an empty store).
        Raises :class:`NotesError` for a file that is not a notes file of these dictionaries."""
        path = notes_path(folder, dictionaries_hash)
        if not path.exists():
            return cls(path, dictionaries_hash)
        data = read_versioned(path, FORMAT, VERSION, NotesError, "; it was left as it is")
        if data.get("dictionaries_hash") != dictionaries_hash:
            raise NotesError(
                f"{path} holds notes for dictionaries {data.get('dictionaries_hash')!r},"
                f" not {dictionaries_hash!r}; it was left as it is"
            )
        try:
            notes = {str(k): Note(str(v["label"]), str(v.get("notes", ""))) for k, v in data["notes"].items()}
        except (KeyError, TypeError, AttributeError) as error:
            raise NotesError(f"{path} has a malformed note ({error!r}); it was left as it is") from None
        return cls(path, dictionaries_hash, notes)

    def get(self, feature_id: str) -> Note | None:
        return self._notes.get(feature_id)

    def labels(self, automatic: Callable[[str], str | None] | None) -> Callable[[str], str | None]:
        """Feature id -> the user's label (marked ✎), else the ``automatic`` one."""

        def label(feature_id: str) -> str | None:
            note = self._notes.get(feature_id)
            return note.shown() if note is not None else automatic(feature_id) if automatic else None

        return label

    def note_of(self, feature_id: str) -> dict | None:
        """The user's note on a feature as plain data (``{"label", "notes"}``), for exports."""
        note = self._notes.get(feature_id)
        return asdict(note) if note is not None else None

    def set(self, feature_id: str, note: Note) -> None:
        """Keep ``note`` for the feature (an empty label and notes remove it), and save; when the
        file cannot be written (``OSError``) the notes stay as they were."""
        notes = {fid: kept for fid, kept in self._notes.items() if fid != feature_id}
        if note.label.strip() or note.notes.strip():
            notes[feature_id] = Note(note.label.strip(), note.notes.strip())
        self._write(notes)
        self._notes = notes

    def search(self, query: str) -> list[tuple[str, Note]]:
        """(feature id, note) of the notes holding every word of ``query``, by feature id."""
        words = query.lower().split()
        return sorted((fid, note) for fid, note in self._notes.items() if words and note.matches(words))

    def to_dict(self, notes: dict[str, Note] | None = None) -> dict:
        """The file's contents: these notes, or ``notes`` in their place."""
        notes = self._notes if notes is None else notes
        return {
            "format": FORMAT,
            "version": VERSION,
            "dictionaries_hash": self.dictionaries_hash,
            "notes": {fid: asdict(note) for fid, note in sorted(notes.items())},
        }

    def _write(self, notes: dict[str, Note]) -> None:
        """Write the file whole: a temporary file renamed over the old one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path, self.to_dict(notes))
