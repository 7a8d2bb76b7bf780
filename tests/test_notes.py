"""The user's notes file: a round trip, the atomic write, and clear refusals of a corrupt or foreign
file (never written over)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from othello_tui.notes import FORMAT, VERSION, Note, NotesError, NoteStore, notes_path


def test_notes_round_trip_through_the_file(tmp_path):
    store = NoteStore.open(tmp_path, "abc123")
    store.set("L2M845", Note(" flips c-4 ", "only after a diagonal capture"))
    store.set("L0A3", Note("", "odd one"))
    path = notes_path(tmp_path, "abc123")
    assert path == tmp_path / "notes" / "notes-abc123.json"
    assert json.loads(path.read_text()) == {
        "format": FORMAT,
        "version": VERSION,
        "dictionaries_hash": "abc123",
        "notes": {
            "L0A3": {"label": "", "notes": "odd one"},
            "L2M845": {"label": "flips c-4", "notes": "only after a diagonal capture"},
        },
    }
    again = NoteStore.open(tmp_path, "abc123")
    assert again.get("L2M845") == Note("flips c-4", "only after a diagonal capture")
    assert again.get("L2M845").shown() == "✎ flips c-4" and again.get("L0A3").shown() == "✎ odd one"
    assert [fid for fid, _ in again.search("DIAGONAL c-4")] == ["L2M845"]
    assert again.search("") == [] and again.search("nowhere") == []
    again.set("L2M845", Note("  ", ""))  # both empty: removed
    assert NoteStore.open(tmp_path, "abc123").get("L2M845") is None


def test_a_save_replaces_the_file_whole_through_a_temporary_file(tmp_path, monkeypatch):
    store = NoteStore.open(tmp_path, "abc123")
    store.set("L1M1", Note("first"))
    replaced = []
    real_replace = os.replace

    def spy(source, target):
        replaced.append((os.path.basename(source), json.loads(Path(source).read_text())["notes"]))
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", spy)
    store.set("L1M2", Note("second"))
    assert replaced == [
        (
            f".notes-abc123.json.partial-{os.getpid()}",
            {"L1M1": {"label": "first", "notes": ""}, "L1M2": {"label": "second", "notes": ""}},
        )
    ]
    assert sorted(p.name for p in (tmp_path / "notes").iterdir()) == ["notes-abc123.json"]

    def fail(source, target):
        raise OSError(28, "No space left on device", str(target))

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        store.set("L1M3", Note("third"))
    assert store.get("L1M3") is None  # not kept when not saved
    # the old file is intact and no temporary file is left behind
    assert sorted(NoteStore.open(tmp_path, "abc123").to_dict()["notes"]) == ["L1M1", "L1M2"]
    assert sorted(p.name for p in (tmp_path / "notes").iterdir()) == ["notes-abc123.json"]


@pytest.mark.parametrize(
    "text, says",
    [
        ("{not json", "cannot read the notes file"),
        ('{"format": "something else"}', "is not an othello-tui notes file"),
        (
            json.dumps({"format": FORMAT, "version": 99, "dictionaries_hash": "abc123", "notes": {}}),
            "version 99",
        ),
        (
            json.dumps({"format": FORMAT, "version": VERSION, "dictionaries_hash": "other", "notes": {}}),
            "'other'",
        ),
        (
            json.dumps(
                {"format": FORMAT, "version": VERSION, "dictionaries_hash": "abc123", "notes": {"L1M1": 3}}
            ),
            "malformed",
        ),
    ],
)
def test_a_corrupt_or_foreign_file_is_refused_clearly_and_left_alone(tmp_path, text, says):
    path = notes_path(tmp_path, "abc123")
    path.parent.mkdir()
    path.write_text(text)
    with pytest.raises(NotesError, match="abc123.json") as error:
        NoteStore.open(tmp_path, "abc123")
    assert says in str(error.value)
    assert path.read_text() == text
