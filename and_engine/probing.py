"""Probing sets D_p: the embedded demo, ESC-50, a folder of ``label/*.wav``, or a CSV of ``path,label[,fold]``.

``open_probing_set(cfg, root)`` -> ``ProbingSet``: every file is decoded once and validated; unusable
files (unreadable, empty, silent, NaN/inf, too short, unsupported format) go to ``issues`` with a reason
and are skipped; nothing else is dropped. ``clip_id`` = position in the list sorted by relative path.
"""

from __future__ import annotations

import csv
import posixpath
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from and_engine.audio import AUDIO_EXTENSIONS, AudioIssue, inspect_audio, load_clip
from and_engine.config import ProbingSetConfig
from and_engine.text.concepts import normalise_name

CLIP_COLUMNS = ["clip_id", "rel_path", "label", "fold", "duration_s", "orig_sample_rate", "orig_channels",
                "source", "license"]
N_FOLDS = 5


class ProbingSetError(ValueError):
    """The probing set itself is unusable (missing folder / metadata, no valid clip, bad CSV)."""


# probing_set.kind (probe --kind) -> the layout it reads
LAYOUTS = {
    "folder": "FOLDER/<label>/<clip>.wav|.flac|.ogg|.mp3 (one sub-folder per label; folds assigned 1-5)",
    "demo": "FOLDER/meta.csv with columns filename,label,fold (file names relative to FOLDER)",
    "esc50": "FOLDER/meta/esc50.csv + FOLDER/audio/*.wav (the official ESC-50 layout)",
    "csv": "a CSV file with the header path,label[,fold] (paths relative to the CSV's folder)",
}


def _audio_files(folder: Path) -> list[Path]:
    return [f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS]


def _names(paths: list[Path], n: int = 4) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in paths)
    return ", ".join(names[:n]) + (f", ... ({len(names)} in all)" if len(names) > n else "")


def describe_found(path: Path) -> str:
    """What lies at ``path`` and which layout it looks like, in a sentence or two (for error messages)."""
    path = Path(path)
    if not path.exists():
        return f"nothing exists at {path}"
    if path.is_file():
        hint = {".csv": "; a CSV probing set is kind csv (probe --kind csv)"}.get(path.suffix.lower(), "")
        if path.suffix.lower() in AUDIO_EXTENSIONS:
            hint = "; put audio files in FOLDER/<label>/ and give FOLDER"
        return f"{path} is a file, not a folder{hint}"
    subdirs = sorted(p for p in path.iterdir() if p.is_dir())
    files = [p for p in path.iterdir() if p.is_file()]
    parts = [f"{len(subdirs)} sub-folder(s) ({_names(subdirs)})" if subdirs else "no sub-folder",
             f"{len(files)} file(s) ({_names(files)})" if files else "no file"]
    hints = []
    if (path / "meta" / "esc50.csv").is_file():
        hints.append("meta/esc50.csv: the ESC-50 layout, kind esc50")
    if (path / "meta.csv").is_file():
        with (path / "meta.csv").open(newline="", errors="replace") as fh:
            header = next(csv.reader(fh), [])
        looks = "the demo layout, kind demo" if {"filename", "label", "fold"} <= set(header) else \
            "not the demo layout, which needs filename,label,fold"
        hints.append(f"meta.csv with columns {','.join(header)}: {looks}")
    if _audio_files(path):
        hints.append(f"{len(_audio_files(path))} audio file(s) directly in the folder: the folder kind wants them "
                     "in one sub-folder per label")
    nested = [d for d in subdirs if any(_audio_files(g) for g in d.iterdir() if g.is_dir())]
    if nested and not any(_audio_files(d) for d in subdirs):
        hints.append(f"label folders with audio inside {_names(nested)}: give {nested[0]} as the folder")
    return f"{path} holds {' and '.join(parts)}" + "".join(f"; {h}" for h in hints)


def layout_error(kind: str, path: Path, problem: str) -> ProbingSetError:
    """A ProbingSetError: ``problem``, what lies at ``path`` and the layouts each kind accepts."""
    layouts = "\n".join(f"    {k:<7}{v}" for k, v in LAYOUTS.items())
    return ProbingSetError(f"{problem}\n  found: {describe_found(path)}\n  accepted layouts "
                           f"(probing_set.kind / probe --kind; this was {kind!r}):\n{layouts}")


@dataclass
class ProbingSet:
    """Validated clips (``clips``: CLIP_COLUMNS) under ``root`` and the files skipped (``issues``)."""

    root: Path
    clips: pd.DataFrame
    issues: pd.DataFrame  # rel_path, reason

    @property
    def class_names(self) -> list[str]:
        return sorted(self.clips["label"].unique().tolist())

    def audio_path(self, clip_id: int) -> Path:
        """Absolute path of a clip, guaranteed to lie inside ``root``."""
        rel = self.clips.loc[self.clips["clip_id"] == int(clip_id), "rel_path"]
        if rel.empty:
            raise KeyError(f"no clip with id {clip_id}")
        return safe_join(self.root, rel.iloc[0])

    def load_waveforms(self, sample_rate: int, clip_seconds: float, clip_ids=None, progress=None) -> np.ndarray:
        """-> (n, round(sample_rate * clip_seconds)) float32 mono waveforms in ``clip_ids`` order (default all)."""
        ids = self.clips["clip_id"].tolist() if clip_ids is None else [int(i) for i in clip_ids]
        out = np.zeros((len(ids), int(round(sample_rate * clip_seconds))), dtype=np.float32)
        for row, clip_id in enumerate(ids):
            out[row] = load_clip(self.audio_path(clip_id), sample_rate, clip_seconds)
            if progress is not None:
                progress.update(1)
        return out

    def fingerprint_rows(self) -> list[list]:
        """What identifies this probing set's content for change detection (paths, labels, folds, sizes)."""
        out = []
        for r in self.clips.itertuples():
            path = self.root / r.rel_path
            st = path.stat()
            out.append([r.rel_path, r.label, int(r.fold), st.st_size, int(st.st_mtime)])
        return out


def safe_join(root: Path, rel: str) -> Path:
    """``root / rel`` resolved; raises ValueError if the result escapes ``root`` (``..``, absolute, symlink)."""
    root = Path(root).resolve()
    candidate = (root / rel).resolve()
    if not candidate.is_relative_to(root):
        raise ValueError(f"path {rel!r} points outside the probing set root {root}")
    return candidate


def classes_are_labels(class_names: list[str], labels: list[str]) -> bool:
    """Whether a model's classes are the probing set's labels (equal sets after ``normalise_name``): only then
    is it evaluated per class (last-layer accuracy, Table 4, Figure 4 in the build; live pruning in the app)."""
    return bool(len(class_names)) and {normalise_name(c) for c in class_names} == {normalise_name(c) for c in labels}


def heldout_clips(clips: pd.DataFrame, class_names: list[str], fold: int) -> pd.DataFrame:
    """The held-out clips a model is evaluated on: rows of ``clips`` in ``fold`` whose label is one of
    ``class_names`` (equal after ``normalise_name``), clip_id order, index kept, plus ``class_index`` (into
    ``class_names``). Empty when there is none. Training, Table 4, feature importance and the app use it."""
    index = {normalise_name(c): i for i, c in enumerate(class_names)}
    held = clips[clips["fold"] == fold].sort_values("clip_id")
    class_index = held["label"].map(lambda s: index.get(normalise_name(s), -1)).astype(np.int64)
    return held[class_index >= 0].assign(class_index=class_index[class_index >= 0])


@dataclass(frozen=True)
class Problem:
    """Why these clips would give meaningless results. ``refuses``: "always" (a build refuses), "trained" (a
    build refuses when it trains a variant; otherwise a warning) or "" (a warning)."""

    message: str
    refuses: str = ""


def problems(clips: pd.DataFrame, top_k: int, heldout_fold: int) -> list[Problem]:
    """(usable clips: label, fold; K of top-K / bottom-K; the held-out fold) -> what makes results meaningless.

    * fewer clips than 2·K: top-K and bottom-K share clips, so calibration compares a neuron with itself (always);
    * one label: a trained variant has nothing to tell apart (trained), and the closed-set concepts from the
      probing labels are the same for every neuron;
    * the held-out fold empty, or holding every clip: a trained variant has no clip to be measured on (its
      accuracy would be None) or none to learn from (trained); the per-class analyses evaluate nothing.
    """
    out, n = [], len(clips)
    if n < 2 * top_k:
        out.append(Problem(f"{n} usable clip(s), but top-K and bottom-K need 2 x activations.top_k = {2 * top_k} "
                           "different clips: they would share clips (add clips or lower activations.top_k)", "always"))
    labels = sorted(clips["label"].unique().tolist())
    if len(labels) == 1:
        out.append(Problem(f"one label only ({labels[0]!r}): a trained variant cannot learn from it, and with "
                           'module_a.concept_set = "probing-labels" every neuron gets that one concept', "trained"))
    folds = sorted(int(f) for f in clips["fold"].unique())
    held = int((clips["fold"] == heldout_fold).sum())
    if held == 0 or held == n:
        what = "no clip" if held == 0 else "every clip"
        out.append(Problem(f"held-out fold {heldout_fold} has {what} (folds present: {folds}): a trained variant "
                           f"{'cannot be measured' if held == 0 else 'has no clip to train on'} and pruning / feature "
                           "importance evaluate nothing (set probing_set.heldout_fold or the clips' folds)", "trained"))
    return out


def refusals(found: list[Problem], trains: bool) -> tuple[list[str], list[str]]:
    """``problems`` -> (messages a build refuses on, messages it only warns about) for a build that ``trains``."""
    refuse = [p.message for p in found if p.refuses == "always" or (p.refuses == "trained" and trains)]
    return refuse, [p.message for p in found if p.message not in refuse]


def _entries_demo(root: Path) -> list[dict]:
    meta = root / "meta.csv"
    if not meta.is_file():
        raise layout_error("demo", root, f"demo probing set: {meta} not found")
    df = pd.read_csv(meta)
    need = {"filename", "label", "fold"}
    if not need <= set(df.columns):
        raise layout_error("demo", root, f"{meta}: needs columns {sorted(need)}, has {list(df.columns)} (kind "
                                         "csv or folder assign folds 1-5 themselves)")
    missing = df.index[df["fold"].isna()].tolist()
    if missing:
        raise ProbingSetError(f"{meta}: no fold in {len(missing)} row(s), first {df['filename'].iloc[missing[0]]!r} "
                              f"(csv line {missing[0] + 2}); every row needs a fold (held-out fold: "
                              "probing_set.heldout_fold)")
    return [{"rel_path": r.filename, "label": r.label, "fold": int(r.fold),
             "source": str(getattr(r, "source_package", "") or ""), "license": str(getattr(r, "license", "") or "")}
            for r in df.itertuples()]


def _entries_esc50(root: Path) -> list[dict]:
    meta = root / "meta" / "esc50.csv"
    if not meta.is_file():
        raise layout_error("esc50", root, f"ESC-50: {meta} not found")
    df = pd.read_csv(meta)
    if not {"filename", "fold", "category"} <= set(df.columns):
        raise ProbingSetError(f"{meta}: not an ESC-50 metadata file (needs filename, fold, category)")
    return [{"rel_path": f"audio/{r.filename}", "label": r.category, "fold": int(r.fold),
             "source": f"ESC-50 {getattr(r, 'src_file', '')}".strip(), "license": "CC-BY-NC (ESC-50)"}
            for r in df.itertuples()]


def _assign_folds(entries: list[dict]) -> list[dict]:
    """Entries without a fold get folds 1..5 round-robin within their label (sorted by path): deterministic."""
    by_label: dict[str, int] = {}
    for e in sorted(entries, key=lambda e: e["rel_path"]):
        if e.get("fold") is None and not e.get("issue"):
            i = by_label.get(e["label"], 0)
            e["fold"] = i % N_FOLDS + 1
            by_label[e["label"]] = i + 1
    return entries


def _entries_folder(root: Path) -> list[dict]:
    entries = []
    for label_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(label_dir.iterdir()):
            if f.is_file():
                entries.append({"rel_path": f"{label_dir.name}/{f.name}", "label": label_dir.name, "fold": None,
                                "source": "", "license": ""})
    if not entries:
        raise layout_error("folder", root, f"folder probing set {root}: no file in any label sub-folder")
    return _assign_folds(entries)


def _entries_csv(csv_path: Path) -> list[dict]:
    """Rows of a ``path,label[,fold]`` CSV -> entries; a row without a path or a label becomes an entry with
    an ``issue`` (reported and skipped), and so does every row of a path listed with different labels/folds."""
    if not csv_path.is_file():
        raise layout_error("csv", csv_path, f"CSV probing set: {csv_path} is not a file")
    entries = []
    with csv_path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"path", "label"} <= set(reader.fieldnames):
            raise ProbingSetError(f"{csv_path}: needs a header with path,label[,fold]; got {reader.fieldnames}")
        for n, row in enumerate(reader, start=2):
            fold = (row.get("fold") or "").strip()
            if fold and not fold.isdigit():
                raise ProbingSetError(f"{csv_path}:{n}: fold must be an integer, got {fold!r}")
            path, label = (row.get("path") or "").strip(), (row.get("label") or "").strip()
            entry = {"rel_path": path or f"{csv_path.name} line {n}", "label": label,
                     "fold": int(fold) if fold else None, "source": "", "license": "", "line": n}
            missing = [name for name, value in (("path", path), ("label", label)) if not value]
            entries.append({**entry, "issue": f"{csv_path.name} line {n}: no {' and no '.join(missing)}"}
                           if missing else entry)
    return _assign_folds(_one_row_per_path(entries, csv_path.name))


def _one_row_per_path(entries: list[dict], where: str) -> list[dict]:
    """A path listed more than once: once if every listing agrees (label, fold), else every listing becomes
    an ``issue`` (which label is right cannot be told)."""
    rows: dict[str, list[dict]] = {}
    for e in entries:
        rows.setdefault("" if e.get("issue") else posixpath.normpath(e["rel_path"]), []).append(e)
    out = rows.pop("", [])
    for listed in rows.values():
        if len({(e["label"], e["fold"]) for e in listed}) == 1:
            out.append(listed[0])
            continue
        lines = ", ".join(f"line {e['line']}: {e['label']!r}" + (f" fold {e['fold']}" if e["fold"] else "")
                          for e in listed)
        out += [{**e, "issue": f"listed {len(listed)} times in {where} with different labels or folds ({lines})"}
                for e in listed]
    return out


def _entries(cfg: ProbingSetConfig, path: Path) -> tuple[Path, list[dict]]:
    if cfg.kind == "csv":
        return path.parent, _entries_csv(path)
    readers = {"demo": _entries_demo, "esc50": _entries_esc50, "folder": _entries_folder}
    if cfg.kind not in readers:
        raise ProbingSetError(f"unknown probing_set.kind {cfg.kind!r}; expected demo, esc50, folder or csv")
    if not path.is_dir():
        raise layout_error(cfg.kind, path, f"probing set folder not found: {path}")
    return path, readers[cfg.kind](path)


def _subset(entries: list[dict], max_clips: int) -> list[dict]:
    """A stratified subset: round-robin over labels (each label's files in path order) up to ``max_clips``."""
    if max_clips <= 0 or len(entries) <= max_clips:
        return entries
    by_label: dict[str, list[dict]] = {}
    for e in sorted(entries, key=lambda e: e["rel_path"]):
        by_label.setdefault(e["label"], []).append(e)
    out, i = [], 0
    while len(out) < max_clips:
        for items in by_label.values():
            if i < len(items) and len(out) < max_clips:
                out.append(items[i])
        i += 1
    return out


def open_probing_set(cfg: ProbingSetConfig, path: Path, progress=None) -> ProbingSet:
    """Read the metadata of ``cfg.kind`` at ``path``, decode + validate every file -> ProbingSet."""
    root, entries = _entries(cfg, Path(path))
    listed = [e for e in entries if e.get("issue")] + _subset([e for e in entries if not e.get("issue")],
                                                               cfg.max_clips)
    rows, issues = [], []
    for e in sorted(listed, key=lambda e: printable(e["rel_path"])):
        try:
            if e.get("issue"):
                raise ValueError(e["issue"])
            if not (_is_utf8(e["rel_path"]) and _is_utf8(e["label"])):
                raise ValueError("the file or folder name is not valid UTF-8 (rename it)")
            full = safe_join(root, e["rel_path"])
            info = inspect_audio(full, cfg.min_seconds, cfg.silence_dbfs)
        except (AudioIssue, ValueError) as exc:
            issues.append({"rel_path": printable(e["rel_path"]), "reason": getattr(exc, "reason", str(exc))})
        else:
            rows.append({**{k: v for k, v in e.items() if k in CLIP_COLUMNS}, "duration_s": info.duration_s,
                         "orig_sample_rate": info.sample_rate, "orig_channels": info.channels})
        if progress is not None:
            progress.update(1)
    if not rows:
        raise ProbingSetError(f"no usable clip in {path}: {len(issues)} file(s) reported, e.g. "
                              + "; ".join(f"{i['rel_path']}: {i['reason']}" for i in issues[:3]))
    clips = pd.DataFrame(rows)
    clips.insert(0, "clip_id", np.arange(len(clips), dtype=np.int32))
    clips["fold"] = clips["fold"].astype(np.int32)
    return ProbingSet(root=root.resolve(), clips=clips[CLIP_COLUMNS],
                      issues=pd.DataFrame(issues, columns=["rel_path", "reason"]))


def count_entries(cfg: ProbingSetConfig, path: Path) -> int:
    """How many files the probing set lists (for a progress bar before decoding)."""
    entries = _entries(cfg, Path(path))[1]
    return len(_subset([e for e in entries if not e.get("issue")], cfg.max_clips)) + sum(
        bool(e.get("issue")) for e in entries)


def _is_utf8(value: object) -> bool:
    """False for a name holding bytes that are not UTF-8 (a database or a web page cannot hold it as text)."""
    return not isinstance(value, str) or value == printable(value)


def printable(name: str) -> str:
    """A file name as text: bytes that are not UTF-8 (``os.fsdecode``'s surrogates) as ``\\xNN`` escapes."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def listed_labels(cfg: ProbingSetConfig, path: Path) -> list[str]:
    """The label of every file the probing set lists, from its metadata alone (``plan``: nothing decoded)."""
    entries = [e for e in _entries(cfg, Path(path))[1] if not e.get("issue")]
    return [e["label"] for e in _subset(entries, cfg.max_clips)]
