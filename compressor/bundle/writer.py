"""Bundles: a directory (optionally also a ``.tar.gz``) holding the artifact, ``manifest.json``,
reference inputs/outputs and a human report.

Written into a temporary directory beside the destination and renamed into place, so a failure never
leaves half a bundle. Every file's sha256 is in the manifest.
"""

from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any, Optional

from pydantic import field_validator

from compressor.bundle import arm64
from compressor.bundle.manifest import SCHEMA_VERSION, validate_manifest
from compressor.core.errors import InputError, VerificationError
from compressor.core.files import json_default, sha256_file
from compressor.core.options import OUTPUT, Settings, option

MANIFEST = "manifest.json"
REFERENCE_INPUTS = "reference/inputs.npz"
REFERENCE_OUTPUTS = "reference/outputs.npz"
REPORT = "REPORT.md"


class OutputSettings(Settings):
    """Where and how the bundle is written (recipe section ``output``)."""

    path: str = option(help="Bundle directory to write (must not exist).", flag="--output", short="-o", panel=OUTPUT)
    overwrite: bool = option(False, "Replace an existing bundle directory.", flag="--overwrite", panel=OUTPUT)
    tar: bool = option(False, "Also write BUNDLE.tar.gz.", flag="--tar", panel=OUTPUT)
    reference_samples: int = option(8, "Reference inputs (and the artifact's outputs for them) kept for verify.", ge=1)
    verify_on: Optional[str] = option(None, "After writing, re-run the bundle's reference inputs with its own runtime on an emulated "
                                      "CPU of this ISA (arm64: `compressor setup-arm64` once) and record it in the manifest "
                                      "(validation.arm64).", flag="--verify-on", panel=OUTPUT, commands=("compress",))
    verify_cpus: Optional[str] = option(None, "--verify-on: the emulated CPU models, comma-separated (default "
                                        f"{','.join(arm64.DEFAULT_CPUS)}; choose from {', '.join(arm64.CPU_MODELS)}).",
                                        flag="--verify-cpus", panel=OUTPUT, commands=("compress",))

    @field_validator("verify_on")
    @classmethod
    def _known_isa(cls, v: Optional[str]) -> Optional[str]:
        try:
            return v if v is None else arm64.check_isa(v)
        except InputError as e:
            raise ValueError(str(e)) from None

    @field_validator("verify_cpus")
    @classmethod
    def _known_cpus(cls, v: Optional[str]) -> Optional[str]:
        try:
            return v if v is None else ",".join(arm64.check_cpus(arm64.parse_cpus(v)))
        except InputError as e:
            raise ValueError(str(e)) from None


def check_destination(output: Path, overwrite: bool) -> None:
    """Fail early (before any work) when ``output`` exists and may not be replaced."""
    output = Path(output)
    if output.exists() and not overwrite:
        raise InputError(f"output '{output}' already exists: choose another --output or pass --overwrite")
    if output.exists() and not output.is_dir():
        raise InputError(f"output '{output}' exists and is not a bundle directory: remove it or choose another --output")
    if not output.parent.exists():
        raise InputError(f"the folder '{output.parent}' for --output does not exist: create it first")


class BundleWriter:
    """Collects files in a staging directory; :meth:`commit` writes the manifest and renames."""

    def __init__(self, output: Path, overwrite: bool = False):
        self.output = Path(output).resolve()
        check_destination(self.output, overwrite)
        self.overwrite = overwrite
        self.staging = Path(tempfile.mkdtemp(prefix=f".{self.output.name}.tmp-", dir=self.output.parent))

    def path(self, rel: str) -> Path:
        p = self.staging / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def add_file(self, src: Path, rel: str) -> Path:
        dst = self.path(rel)
        shutil.copy2(src, dst)
        return dst

    def commit(self, manifest: dict[str, Any], tar: bool = False) -> Path:
        files = {
            str(p.relative_to(self.staging)): sha256_file(p)
            for p in sorted(self.staging.rglob("*"))
            if p.is_file() and p.name != MANIFEST
        }
        manifest = json.loads(json.dumps({"schema_version": SCHEMA_VERSION, **manifest, "files": files}, default=json_default))
        validate_manifest(manifest, "the bundle being written")  # never write a manifest that breaks its own schema
        (self.staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        self._place()
        if tar:
            write_tarball(self.output)
        return self.output

    def adopt(self) -> Path:
        """Put in place a whole bundle already unpacked into the staging directory (one another machine wrote), after
        checking its manifest and every file's sha256."""
        problems = check_files(self.staging, read_manifest(self.staging))
        if problems:
            raise VerificationError(f"the bundle received is damaged: {'; '.join(problems[:3])}")
        self._place()
        return self.output

    def _place(self) -> None:
        old = None
        if self.output.exists():
            old = self.output.with_name(f".{self.output.name}.old-{self.staging.name[-8:]}")
            self.output.rename(old)
        try:
            self.staging.rename(self.output)
        except BaseException:
            if old is not None:  # put the previous bundle back
                old.rename(self.output)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def abort(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)

    def __enter__(self) -> BundleWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.staging.exists():
            self.abort()


def write_tarball(bundle: Path) -> Path:
    dst = bundle.with_name(bundle.name + ".tar.gz")
    tmp = dst.with_name(f".{dst.name}.tmp")
    try:
        with tarfile.open(tmp, "w:gz") as tf:
            tf.add(bundle, arcname=bundle.name)
        tmp.rename(dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dst


def read_manifest(bundle: Path) -> dict[str, Any]:
    path = Path(bundle) / MANIFEST
    if not path.is_file():
        raise InputError(f"'{bundle}' is not a bundle: it has no {MANIFEST}")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise VerificationError(f"{path} is not valid JSON ({e.msg}, line {e.lineno}): the bundle is damaged") from None
    validate_manifest(manifest, f"bundle '{bundle}'")
    return manifest


def check_files(bundle: Path, manifest: dict[str, Any]) -> list[str]:
    """Problems with the bundle's files: changed, missing or unlisted ones (empty when intact)."""
    bundle = Path(bundle)
    problems = []
    listed = manifest.get("files", {})
    for rel, digest in listed.items():
        p = bundle / rel
        if not p.is_file():
            problems.append(f"{rel} is missing")
        elif sha256_file(p) != digest:
            problems.append(f"{rel} changed (sha256 differs from the manifest)")
    for p in sorted(bundle.rglob("*")):
        rel = str(p.relative_to(bundle))
        if p.is_file() and rel != MANIFEST and rel not in listed:
            problems.append(f"{rel} is not listed in the manifest")
    return problems


def open_bundle(path: Path, workdir: Path) -> Path:
    """A bundle directory for ``path``: the directory itself, or a ``.tar.gz`` extracted into ``workdir``."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"bundle '{path}' not found: check the path")
    if path.is_dir():
        return path
    if path.name.endswith((".tar.gz", ".tgz")):
        try:
            with tarfile.open(path, "r:gz") as tf:
                tf.extractall(workdir, filter="data")
        except (tarfile.TarError, OSError, EOFError) as e:
            raise VerificationError(f"cannot unpack bundle '{path}': {e}")
        dirs = [d for d in Path(workdir).iterdir() if d.is_dir()]
        if len(dirs) != 1:
            raise VerificationError(f"'{path}' does not hold exactly one bundle directory")
        return dirs[0]
    raise InputError(f"'{path}' is neither a bundle directory nor a .tar.gz bundle")
