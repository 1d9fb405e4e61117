"""Make `dvc plots show` work offline: an HTML template with vega, vega-lite and vega-embed inline.

DVC's default page loads the three libraries from a CDN, so it is blank without a network. This script
fetches the same versions DVC's renderer uses from the npm registry (`npm pack`, once; the tarballs are
kept in build/vega/ and checked against pinned sha512 digests), writes `.dvc/plots-offline.html` (git-ignored)
with the libraries inline, and points DVC at it in `.dvc/config.local` (`plots.html_template`). Without npm
and without cached tarballs it changes nothing and says so (DVC keeps its CDN page).

    python scripts/dvc-plots-offline.py [--project DIR]
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

# the versions dvc_render's vega renderer loads (dvc_render/vega.py: SCRIPTS), pinned with their npm digests
PACKAGES = {
    "vega": ("5.20.2", "build/vega.min.js",
             "sha512-qmH7aD9GGPpssVdxL1xgcdxTbQzyRUeRR16Os385ymvQhiwCYQNA6+eXUPAZDTVLfk0RXu6Jzj6kUE5jQ80EVw=="),
    "vega-lite": ("5.2.0", "build/vega-lite.min.js",
                  "sha512-Yxcg8MvYfxHcG6BbkaKT0oVCIMIcE19UvqIsEwBmyd/7h2nzW7oRnID81T8UrY7hpDrIr6wa2JADOT2dhGNErw=="),
    "vega-embed": ("6.18.2", "build/vega-embed.min.js",
                   "sha512-wcDyQPE4J5aiCDc3/suH5RQDvrKkjuLkhzUcbOLwEkNF8/+pp17tS0JghzEvAPNRg+5aG1/N2ydixq8Lk3dOlg=="),
}
TEMPLATE_NAME = "plots-offline.html"
ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "build" / "vega"

PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>DVC Plot (offline)</title>
    <!-- vega, vega-lite and vega-embed inline (scripts/dvc-plots-offline.py): the page needs no network -->
    SCRIPTS
    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>"""


def integrity(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def tarball(name: str, version: str, digest: str) -> Path | None:
    """The package tarball from the cache or the npm registry, checked against its pinned digest."""
    path = CACHE / f"{name}-{version}.tgz"
    if not path.exists():
        npm = shutil.which("npm")
        if npm is None:
            return None
        CACHE.mkdir(parents=True, exist_ok=True)
        r = subprocess.run([npm, "pack", f"{name}@{version}", "--silent"], cwd=CACHE, capture_output=True,
                           text=True, timeout=300)
        if r.returncode != 0 or not path.exists():
            print(f"dvc-plots-offline: npm pack {name}@{version} failed: {r.stderr.strip()[-500:]}", file=sys.stderr)
            return None
    if integrity(path) != digest:
        path.unlink()
        raise SystemExit(f"dvc-plots-offline: {path.name} does not match its pinned sha512 digest (removed)")
    return path


def build_template() -> str | None:
    scripts = []
    for name, (version, member, digest) in PACKAGES.items():
        tgz = tarball(name, version, digest)
        if tgz is None:
            return None
        with tarfile.open(tgz) as tf:
            js = tf.extractfile(f"package/{member}").read().decode("utf-8")
        # a literal "</script" inside the code would end the inline element early
        js = js.replace("</script", "<\\/script")
        scripts.append(f"<script>/* {name}@{version} */\n{js}\n</script>")
    page = PAGE.replace("SCRIPTS", "\n    ".join(scripts))
    for placeholder in ("{plot_divs}", "{refresh_tag}"):
        assert page.count(placeholder) == 1, placeholder  # dvc_render fills these by plain replacement
    assert "{scripts}" not in page  # ... and would put its CDN <script> tags there
    return page


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--project", default=str(ROOT), help="the DVC project (default: this repository)")
    args = ap.parse_args(argv)
    dvc_dir = Path(args.project) / ".dvc"
    if not dvc_dir.is_dir():
        print(f"dvc-plots-offline: {dvc_dir} not found (not a DVC project)", file=sys.stderr)
        return 2
    page = build_template()
    if page is None:
        print("dvc-plots-offline: npm not found and no cached vega packages in build/vega; `dvc plots show` keeps "
              "DVC's page, which loads vega from a CDN (install npm and run `make install` again)", file=sys.stderr)
        return 0
    (dvc_dir / TEMPLATE_NAME).write_text(page, encoding="utf-8")
    dvc = Path(sys.executable).parent / "dvc"
    subprocess.run([str(dvc) if dvc.exists() else "dvc", "config", "--local", "plots.html_template", TEMPLATE_NAME],
                   cwd=args.project, check=True)
    print(f"dvc-plots-offline: `dvc plots show` uses {dvc_dir / TEMPLATE_NAME} ({len(page) / 1e6:.1f} MB, "
          "no network needed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
