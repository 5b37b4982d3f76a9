"""Fetch the real telemetry of `make eval-real` (bench/real/sources.toml) and verify it.

Each source is a file in a public GitHub repository at a pinned commit.  It is taken from, in
this order: the committed copy (bench/real/data/, for the few small GPL-2.0 files the test
suite uses), the cache (bench/real/cache/, gitignored), each ``--from DIR`` (a plain directory,
searched by content hash, e.g. a copy of the project's shared data; or a bare git mirror,
``<owner>+<name>/repo`` under DIR, read at the pinned commit), and last
``https://raw.githubusercontent.com/<owner>/<repo>/<commit>/<path>``.  Whatever the origin, the
content must have the pinned sha256, else it is refused.  Files are stored gzip-compressed
(sightline reads ``.gz``).

Usage: python -m bench.real.fetch [--from DIR ...] [--only ID ...] [--offline] [--check]
Exit codes: 0 all sources present and verified; 2 a source is missing or does not verify.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import subprocess
import sys
import tomllib
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "sources.toml"
DATA = HERE / "data"
CACHE = Path(os.environ.get("SIGHTLINE_REAL_CACHE", HERE / "cache"))
DEFAULT_FROM = [Path("/work/shared/data"), Path("/work/.mirror")]


class FetchError(Exception):
    pass


def load_sources(path: Path = SOURCES) -> dict[str, dict]:
    with open(path, "rb") as fh:
        sources = tomllib.load(fh)
    for sid, s in sources.items():
        missing = {"repo", "commit", "path", "sha256", "license"} - set(s)
        if missing:
            raise FetchError(f"{path}: source {sid} lacks {sorted(missing)}")
        s["id"] = sid
    return sources


def stored_name(src: dict) -> str:
    base = Path(src["path"]).name
    if not src.get("compress", True):
        return base
    return base if base.endswith(".gz") else base + ".gz"


def local_path(src: dict) -> Path:
    """Where the source lives once fetched: committed data/ or the cache."""
    d = DATA if src.get("committed") else CACHE
    return d / src["id"] / stored_name(src)


def _plain(raw: bytes) -> bytes:
    return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw


def sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def verify(path: Path, src: dict) -> bool:
    try:
        return sha256(_plain(path.read_bytes())) == src["sha256"]
    except (OSError, EOFError, gzip.BadGzipFile):
        return False


def _from_git(gitdir: Path, src: dict) -> bytes | None:
    try:
        out = subprocess.run(
            ["git", "--git-dir", str(gitdir), "show", f"{src['commit']}:{src['path']}"],
            capture_output=True,
            check=False,
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def _git_dirs(root: Path, repo: str) -> list[Path]:
    owner, name = repo.split("/")
    cands = [root / f"{owner}+{name}" / "repo", root / f"{owner}+{name}", root]
    return [c for c in cands if (c / "HEAD").is_file() and (c / "objects").is_dir()]


def _from_dir(root: Path, src: dict, index: dict[Path, dict[str, Path]]) -> bytes | None:
    """A plain directory: the file whose (decompressed) content has the pinned sha256 (names may differ)."""
    if root not in index:
        by_hash: dict[str, Path] = {}
        for p in sorted(root.rglob("*")):
            try:
                if not p.is_file() or p.stat().st_size > 5_000_000:
                    continue
                by_hash.setdefault(sha256(_plain(p.read_bytes())), p)
            except (OSError, EOFError, gzip.BadGzipFile):
                continue
        index[root] = by_hash
    p = index[root].get(src["sha256"])
    return _plain(p.read_bytes()) if p else None


def _download(src: dict, timeout: float) -> bytes | None:
    url = f"https://raw.githubusercontent.com/{src['repo']}/{src['commit']}/{src['path']}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (fixed https host)
            return r.read()
    except OSError:
        return None


def fetch(
    sources: dict[str, dict], froms: list[Path], offline: bool = False, timeout: float = 30.0, log=print
) -> dict[str, Path]:
    """Make every source present and verified; returns id -> local path.  Raises FetchError."""
    index: dict[Path, dict[str, Path]] = {}
    done: dict[str, Path] = {}
    failed: list[str] = []
    for sid, src in sources.items():
        target = local_path(src)
        if target.exists() and verify(target, src):
            done[sid] = target
            continue
        raw, origin = None, None
        for root in froms:
            if not root.is_dir():
                continue
            for g in _git_dirs(root, src["repo"]):
                raw = _from_git(g, src)
                if raw is not None and sha256(raw) == src["sha256"]:
                    origin = f"git mirror {g}"
                    break
                raw = None
            if raw is None:
                raw = _from_dir(root, src, index)
                origin = f"{root}" if raw is not None else None
            if raw is not None:
                break
        if raw is None and not offline:
            raw = _download(src, timeout)
            origin = "raw.githubusercontent.com"
        if raw is None or sha256(raw) != src["sha256"]:
            why = "not found" if raw is None else f"sha256 {sha256(raw)[:16]} != pinned {src['sha256'][:16]}"
            failed.append(f"{sid} ({src['repo']}@{src['commit'][:10]}:{src['path']}): {why}")
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        if src.get("compress", True):
            with (
                open(tmp, "wb") as fh,
                gzip.GzipFile(fileobj=fh, mode="wb", compresslevel=9, mtime=0, filename="") as gz,
            ):
                gz.write(raw)
        else:
            tmp.write_bytes(raw)
        tmp.replace(target)
        log(f"fetched {sid} from {origin} -> {target.relative_to(HERE) if target.is_relative_to(HERE) else target}")
        done[sid] = target
    if failed:
        raise FetchError(
            "missing or unverified sources:\n  "
            + "\n  ".join(failed)
            + "\nfix: run with network access, or pass --from DIR holding a copy "
            "(a directory with the files, or git mirrors <owner>+<name>/repo)"
        )
    return done


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--from",
        dest="froms",
        action="append",
        type=Path,
        default=None,
        help="local directory or mirror root to copy from (repeatable); default: "
        + ", ".join(map(str, DEFAULT_FROM))
        + " where they exist",
    )
    ap.add_argument("--only", action="append", default=None, help="fetch only this source id (repeatable)")
    ap.add_argument("--offline", action="store_true", help="never download")
    ap.add_argument("--check", action="store_true", help="only verify what is present; fetch nothing")
    args = ap.parse_args(argv)
    try:
        sources = load_sources()
    except (FetchError, OSError, tomllib.TOMLDecodeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.only:
        unknown = set(args.only) - set(sources)
        if unknown:
            print(f"error: unknown source ids {sorted(unknown)}; known: {', '.join(sources)}", file=sys.stderr)
            return 2
        sources = {k: v for k, v in sources.items() if k in args.only}
    if args.check:
        bad = [sid for sid, s in sources.items() if not (local_path(s).exists() and verify(local_path(s), s))]
        for sid in bad:
            print(f"missing or unverified: {sid} ({local_path(sources[sid])})", file=sys.stderr)
        print(f"{len(sources) - len(bad)}/{len(sources)} sources present and verified")
        return 2 if bad else 0
    froms = args.froms if args.froms is not None else [p for p in DEFAULT_FROM if p.is_dir()]
    try:
        done = fetch(sources, froms, offline=args.offline)
    except FetchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{len(done)}/{len(sources)} sources present and verified")
    return 0


if __name__ == "__main__":
    sys.exit(main())
