"""The package as a user installs it: the wheel built from pyproject.toml (not an editable install), installed into a
fresh virtual environment, imports every sub-package and runs ``timnet-ser --version``. A sub-package missing from
pyproject.toml's package list fails here."""

import os
import shutil
import subprocess
import sys
import sysconfig

from test_layering import CODE

ROOT = os.path.dirname(CODE)


def sub_packages() -> list[str]:
    return sorted(name for name in os.listdir(CODE) if os.path.isfile(os.path.join(CODE, name, "__init__.py")))


def test_the_wheel_installs_every_sub_package_and_the_command(tmp_path):
    os.makedirs(tmp_path / "source")
    wheels, env, source = tmp_path / "wheels", tmp_path / "venv", tmp_path / "source"
    # a clean copy of what the build reads: a build/ folder left in the checkout would hide a missing package
    for name in ("pyproject.toml", "README.md", "Code"):
        copy = shutil.copytree if os.path.isdir(os.path.join(ROOT, name)) else shutil.copy
        copy(os.path.join(ROOT, name), source / name, **({"ignore": shutil.ignore_patterns(
            "__pycache__", "MFCC", "Models", "Results", "Test_Models", "synthetic_wav")} if name == "Code" else {}))
    # no build isolation: setuptools comes from this environment, nothing is downloaded
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                            str(wheels), str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    [wheel] = list(wheels.glob("timnet_ser-*.whl"))
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=120)
    python = str(env / "bin" / "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # the dependencies (TensorFlow ...) from this environment, after the fresh one's own site-packages
    with open(os.path.join(site, "dependencies.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    modules = ["timnet_ser"] + [f"timnet_ser.{name}" for name in sub_packages()]
    code = (f"import importlib, timnet_ser; [importlib.import_module(m) for m in {modules!r}]; "
            "print(timnet_ser.__file__)")
    done = subprocess.run([python, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith(site)  # the installed copy, not Code/
    version = subprocess.run([str(env / "bin" / "timnet-ser"), "--version"], cwd=tmp_path, capture_output=True,
                             text=True, timeout=120)
    assert version.returncode == 0 and version.stdout.split()[-1] == subprocess.run(
        [python, "-c", "import timnet_ser; print(timnet_ser.__version__)"], capture_output=True, text=True,
        cwd=tmp_path).stdout.strip()
    assert len(sub_packages()) == 8
