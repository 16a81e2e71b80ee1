"""The Linux tarball a clinic unpacks: it self-tests headless, writes nothing into itself, fails
clearly without its model, carries a working menu entry, and leaves out what the app never uses.

Slow (a PyInstaller build takes many minutes): not part of the default suite. The build script
runs it on the tarball it just made (`SOS_BUNDLE_TARBALL`); without that variable the test builds
one itself with `installer/build_linux.sh --no-test`.
"""

from __future__ import annotations

import configparser
import os
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^SOS Review self-test OK: \S+ → stage [0-3] \(.+\), model \S+, \d+ ms$")
BUILD_TIMEOUT_S = 3 * 3600  # a niced build on a busy 2-core machine
RUN_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("SOS_BUNDLE_TARBALL")
    if given:
        return Path(given)
    work = tmp_path_factory.mktemp("build")
    subprocess.run(
        ["bash", str(ROOT / "installer" / "build_linux.sh"), "--no-test"],
        env={**os.environ, "SOS_BUILD_DIR": str(work)},
        check=True,
        timeout=BUILD_TIMEOUT_S,
    )
    (found,) = work.glob("SOSReview-*-linux-x86_64.tar.gz")
    return found


@pytest.fixture(scope="module")
def unpacked(tarball: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("unpacked")
    with tarfile.open(tarball) as tf:
        tf.extractall(target, filter="tar")
    (folder,) = target.iterdir()
    return folder


@pytest.fixture
def user_env(tmp_path: Path) -> dict[str, str]:
    """A user with empty home and XDG folders, no display and no SOS_* overrides."""
    home = tmp_path / "home"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SOS_") and k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    }
    env.update(
        HOME=str(home),
        XDG_DATA_HOME=str(home / "data"),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_STATE_HOME=str(home / "state"),
        XDG_CACHE_HOME=str(home / "cache"),
        OMP_NUM_THREADS="1",
    )
    return env


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file()
    }


def _self_test(folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(folder / "SOSReview"), "--self-test"],
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )


def test_name_and_layout(tarball: Path, unpacked: Path) -> None:
    assert re.fullmatch(r"SOSReview-\d+\.\d+\.\d+.*-linux-x86_64\.tar\.gz", tarball.name)
    assert unpacked.name == tarball.name.removesuffix("-linux-x86_64.tar.gz")
    for name in ("SOSReview", "sos-review.desktop", "sos-review.png", "install-desktop-entry.sh"):
        assert (unpacked / name).is_file(), name
    assert os.access(unpacked / "SOSReview", os.X_OK)
    resources = unpacked / "_internal" / "resources"
    assert (resources / "samples" / "manifest.jsonl").is_file()
    assert (resources / "icons" / "sos-review.png").is_file()


def test_every_file_is_readable_by_every_user(tarball: Path) -> None:
    """Installed by root into /opt, the app (and its 0600-written model) must run for anyone."""
    with tarfile.open(tarball) as tf:
        members = [m for m in tf.getmembers() if m.isfile() or m.isdir()]  # not symlinks
    unreadable = [m.name for m in members if m.mode & 0o444 != 0o444]
    group_writable = [m.name for m in members if m.mode & 0o022]
    assert not unreadable
    assert not group_writable


def test_self_test_passes_headless_and_writes_nothing(
    unpacked: Path, user_env: dict[str, str]
) -> None:
    before = _files(unpacked)
    proc = _self_test(unpacked, user_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout
    assert LINE.match(lines[0]), lines[0]
    assert _files(unpacked) == before  # nothing written into the bundle (it may be read-only)
    data = Path(user_env["XDG_DATA_HOME"])
    assert not (data / "SOS Review").exists()  # and no review store or registry created


def test_self_test_without_the_embedded_model_fails_in_one_sentence(
    unpacked: Path, user_env: dict[str, str]
) -> None:
    student = unpacked / "_internal" / "resources" / "models" / "student"
    assert student.is_dir(), "the bundle has no embedded model"
    aside = student.with_name("student-aside")
    student.rename(aside)
    try:
        proc = _self_test(unpacked, user_env)
    finally:
        aside.rename(student)
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("SOS Review self-test FAILED: No model is installed in "), lines


def test_desktop_entry_is_valid_and_installs_with_absolute_paths(
    unpacked: Path, user_env: dict[str, str]
) -> None:
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # keys are case-sensitive
    entry.read(unpacked / "sos-review.desktop", encoding="utf-8")
    fields = entry["Desktop Entry"]
    assert fields["Type"] == "Application"
    assert fields["Name"] == "SOS Review"
    assert fields["Exec"].startswith("SOSReview")
    subprocess.run(
        ["sh", str(unpacked / "install-desktop-entry.sh")],
        env=user_env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    data = Path(user_env["XDG_DATA_HOME"])
    installed = configparser.ConfigParser(interpolation=None)
    installed.optionxform = str
    installed.read(data / "applications" / "sos-review.desktop", encoding="utf-8")
    fields = installed["Desktop Entry"]
    assert fields["Exec"] == f'"{unpacked}/SOSReview" %f'
    assert Path(fields["TryExec"]) == unpacked / "SOSReview"
    assert Path(fields["Icon"]).is_file()
    subprocess.run(
        ["sh", str(unpacked / "install-desktop-entry.sh"), "--uninstall"],
        env=user_env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    assert not (data / "applications" / "sos-review.desktop").exists()


def test_unused_pieces_are_left_out(unpacked: Path) -> None:
    internal = unpacked / "_internal"
    assert (internal / "torch" / "bin" / "torch_shm_manager").is_file()  # import torch needs it
    assert not (internal / "torch" / "test").exists()
    assert sorted(p.name for p in (internal / "torch" / "bin").iterdir()) == ["torch_shm_manager"]
    assert not list(internal.rglob("libtorchbind_test.so"))
    assert not (internal / "PySide6" / "Qt" / "translations").exists()
    assert not list(internal.rglob("_tkinter*"))
