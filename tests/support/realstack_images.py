"""Images the real-stack tier needs that the node does not hold, built from this host's own files and imported into
the node's containerd (real-node.sh import), as an airgapped cluster gets its images: preloaded, under names of a
registry that does not exist (`airgap.invalid/...`), so any attempt of the kubelet to pull them fails at once.

- a Python for gc's coordinator (its code is standard library only): the host's python3.11 and its standard library;
- the lab's registry image (`/bin/registry` and its libraries, no shell) under such a name, for gc's garbage-collect
  containers, which run the registry binary directly."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from support.paths import SHARED
from support.realstack import TMP, Stack

PYTHON = "airgap.invalid/meshreg-rs/python:3.11"
REGISTRY = "airgap.invalid/meshreg-rs/registry:2.8.2"  # no shell, as minimal and distroless builds
CACHE = TMP / "meshreg-realstack-images"
_SKIP = {"test", "idlelib", "tkinter", "turtledemo", "lib2to3", "ensurepip", "__pycache__",
         "config-3.11-x86_64-linux-gnu"}


def on_node(stack: Stack) -> set[str]:
    """The image names the node's containerd holds."""
    ctr = ["ctr", "-a", str(stack.lab_node / "run" / "containerd.sock"), "-n", "k8s.io", "images", "ls", "-q"]
    return set(subprocess.run(ctr, capture_output=True, text=True, check=True, timeout=60).stdout.split())


def ensure(stack: Stack, name: str) -> str:
    """`name` (PYTHON or REGISTRY) on the node: built and imported once, then found there."""
    if name in on_node(stack):
        return name
    build, config = _BUILDERS[name]
    root = CACHE / re.sub(r"[^a-z0-9]+", "-", name)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    build(stack, root)
    archive = root.with_suffix(".tar")
    subprocess.run(["python3", str(SHARED / "lab-istio" / "lib" / "mkimage.py"), str(root), name, str(archive),
                    *config], check=True, capture_output=True, timeout=600)
    subprocess.run([str(SHARED / "lab-kube" / "real-node.sh"), "import", str(archive)], check=True,
                   capture_output=True, env=stack.env(), timeout=600)
    shutil.rmtree(root, ignore_errors=True)
    archive.unlink()
    return name


def _libraries(*files: Path) -> set[Path]:
    """The shared libraries the ELF files need, as ldd resolves them on this host."""
    found: set[Path] = set()
    for f in files:
        out = subprocess.run(["ldd", str(f)], capture_output=True, text=True, check=False).stdout
        found |= {Path(p) for p in re.findall(r"(/\S+\.so[.\d]*) \(0x", out)}
    return found


def _copy_libraries(root: Path, *files: Path) -> None:
    for lib in _libraries(*files):
        target = root / lib.relative_to("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(lib.resolve(), target)


def _python(stack: Stack, root: Path) -> None:
    stdlib = Path("/usr/lib/python3.11")
    shutil.copytree(stdlib, root / "usr/lib/python3.11", symlinks=True,
                    ignore=lambda d, names: [n for n in names if n in _SKIP or n == "dist-packages"])
    (root / "usr/local/bin").mkdir(parents=True)
    shutil.copy2("/usr/bin/python3.11", root / "usr/local/bin/python3.11")
    (root / "usr/local/bin/python").symlink_to("python3.11")
    _copy_libraries(root, Path("/usr/bin/python3.11"), *stdlib.glob("lib-dynload/*.so"))
    _base(root)


def _registry(stack: Stack, root: Path) -> None:
    shutil.copytree(stack.lab_istio / "mesh" / "images" / "registry", root, symlinks=True, dirs_exist_ok=True)
    assert not (root / "bin" / "sh").exists(), "the lab's registry image has a shell: gc must not need one"


def _base(root: Path) -> None:
    (root / "tmp").mkdir(mode=0o1777, exist_ok=True)
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    (root / "etc/group").write_text("root:x:0:\nnobody:x:65534:\n")


_BUILDERS: dict[str, tuple[Callable[[Stack, Path], None], list[str]]] = {
    PYTHON: (_python, ["--cmd", '["python"]']),
    REGISTRY: (_registry, ["--entrypoint", '["/bin/registry"]',
                           "--cmd", '["serve", "/etc/docker/registry/config.yml"]']),
}
