"""The README runs as written: every command block, in order, on a fresh copy of the repository.

A fresh copy is what a newcomer's clone holds (the files git tracks), with ``../shared`` beside it, as in CI. Each
```bash block runs in ``bash -euo pipefail`` and each ```python block in this interpreter, from the copy's root,
with this environment's ``bin/`` first on the PATH (what ``source .venv/bin/activate`` does). A ```text block right
after a command block is what that command printed: each of its lines must appear in the command's output, in
order (a line ``...`` stands for lines left out; the date and time in a run folder's or a results file's name,
``2026-12-04_04-22-26``, stands for any other). Two markers in the README, on the line before a block:

- ``<!-- readme: not run (why) -->``: a command block the test does not run (the set-up commands, which CI runs
  itself: running ``run_tests.sh`` here would recurse);
- ``<!-- readme: output not compared (why) -->``: an output block whose lines vary from run to run (timings).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass

from conftest import ROOT, SHARED

README = os.path.join(ROOT, "README.md")
FENCE = re.compile(r"^```(\w*)\s*$")
MARKER = re.compile(r"^<!-- readme: (not run|output not compared) \((.+)\) -->$")
STAMP = re.compile(r"\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}")  # a run folder's or results file's time of start
VENV = os.path.dirname(os.path.dirname(sys.executable))  # the environment the tests run in (.venv)


@dataclass
class Block:
    language: str
    text: str
    line: int  # 1-based line of the opening fence
    marker: str | None  # "not run" / "output not compared" / None


def readme_blocks(path: str = README) -> list[Block]:
    """The fenced blocks of ``path`` in order, each with the marker on the line before it."""
    blocks, lines = [], open(path, encoding="utf-8").read().splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        marker = MARKER.match(lines[i - 1]) if i else None
        blocks.append(Block(opening.group(1), "\n".join(lines[i + 1:end]), i + 1, marker and marker.group(1)))
        i = end + 1
    return blocks


def runs_with_outputs(blocks: list[Block]) -> list[tuple[Block, Block | None]]:
    """(command block, the output block that follows it or None) for every block that runs."""
    pairs = []
    for i, block in enumerate(blocks):
        if block.language not in ("bash", "python") or block.marker == "not run":
            continue
        following = blocks[i + 1] if i + 1 < len(blocks) else None
        pairs.append((block, following if following is not None and following.language == "text" else None))
    return pairs


def missing_lines(expected: str, printed: str) -> list[str]:
    """The lines of ``expected`` not found in ``printed`` in order ("..." lines skipped)."""
    printed_lines = [STAMP.sub("<time>", line.rstrip()) for line in printed.splitlines()]
    missing, at = [], 0
    for raw in expected.splitlines():
        line = STAMP.sub("<time>", raw.rstrip())
        if line in ("...", ""):
            continue
        try:
            at = printed_lines.index(line, at) + 1
        except ValueError:
            missing.append(raw.rstrip())
    return missing


def fresh_copy(destination: str) -> str:
    """The files git tracks, copied to ``destination/checkout``, with ``destination/shared`` -> the shared folder."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    checkout = os.path.join(destination, "checkout")
    for name in filter(None, tracked.decode().split("\0")):
        source = os.path.join(ROOT, name)
        if os.path.isfile(source):
            os.makedirs(os.path.dirname(os.path.join(checkout, name)), exist_ok=True)
            shutil.copy2(source, os.path.join(checkout, name))
    os.symlink(os.path.abspath(SHARED), os.path.join(destination, "shared"))
    return checkout


def test_the_markers_and_blocks_are_well_formed():
    blocks = readme_blocks()
    commands = runs_with_outputs(blocks)
    assert len(commands) >= 8, "the README's command blocks were not found"
    not_run = [b for b in blocks if b.marker == "not run"]
    assert not_run and all(b.language == "bash" for b in not_run)
    assert all(b.language == "text" for b in blocks if b.marker == "output not compared")
    assert missing_lines("a\n...\nc", "a\nb\nc\n") == [] and missing_lines("c\na", "a\nc") == ["a"]
    assert missing_lines("M/E_2026-12-04_04-22-26_T", "M/E_2027-01-01_00-00-00_T") == []
    assert missing_lines("M/E_2026-12-04_04-22-26_T", "M/F_2027-01-01_00-00-00_T") == ["M/E_2026-12-04_04-22-26_T"]
    assert not re.search(r"/(work|tmp|root|home)/", open(README, encoding="utf-8").read())  # no machine's paths


def test_every_command_of_the_readme_runs_as_written(tmp_path):
    checkout = fresh_copy(str(tmp_path))
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
           "VIRTUAL_ENV": VENV, "CUDA_VISIBLE_DEVICES": "-1",
           "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    env.pop("SER_SHARED", None)  # the README's commands name ../shared themselves
    for block, output in runs_with_outputs(readme_blocks()):
        command = (["bash", "-euo", "pipefail", "-c", block.text] if block.language == "bash"
                   else [sys.executable, "-c", block.text])
        done = subprocess.run(command, cwd=checkout, env=env, capture_output=True, text=True, timeout=900)
        printed = done.stdout + done.stderr
        where = f"README.md line {block.line}"
        assert done.returncode == 0, f"{where} exited {done.returncode}:\n{printed[-3000:]}"
        if output is not None and output.marker != "output not compared":
            missing = missing_lines(output.text, printed)
            assert not missing, f"{where}: lines the README shows were not printed: {missing}\n--- printed:\n{printed}"


def test_the_demo_command_runs_on_a_fresh_copy(tmp_path):
    """The README's first command, ``bash run_demo.sh`` (the whole pipeline on the generated corpus), here with 3 folds
    of 2 epochs (its flags go to main.py). The copy's set-up finds this .venv and the built kernels, linked in, so
    nothing is installed; the demo must train, write its results and re-test the saved run to the same predictions."""
    # setup.sh's install stamp, by setup.sh's own step: were it stale, the copy's set-up would reinstall this .venv
    # with the project pointing at the copy, which is deleted after the test
    digest = subprocess.run([sys.executable, os.path.join(ROOT, "setup_steps.py"), "digest"], capture_output=True,
                            text=True, check=True, timeout=60).stdout.strip()
    with open(os.path.join(VENV, ".requirements.sha")) as stamp:
        assert stamp.readline().strip() == digest, f"{VENV}: stale; run setup.sh first"
    checkout = fresh_copy(str(tmp_path))
    os.symlink(VENV, os.path.join(checkout, ".venv"))
    if os.path.isdir(os.path.join(ROOT, ".native")):
        os.symlink(os.path.join(ROOT, ".native"), os.path.join(checkout, ".native"))
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1", "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(["bash", "run_demo.sh", "--split_fold", "3", "--epoch", "2"], cwd=checkout, env=env,
                          capture_output=True, text=True, timeout=600)
    printed = done.stdout + done.stderr
    assert done.returncode == 0, f"run_demo.sh exited {done.returncode}:\n{printed[-3000:]}"
    assert "installing" not in printed, printed[:2000]  # the set-up found everything in place
    expected = ["=== SYNTHETIC DEMO: generated harmonic signals, not speech; its numbers say nothing about any corpus ===",
                "generated 120 synthetic utterances in synthetic_wav", "fold 3/3: WAR",
                "test mode on the saved weights reproduces every fold's predictions: yes"]
    assert all(any(line.startswith(want) for line in printed.splitlines()) for want in expected), printed
    results = os.listdir(os.path.join(checkout, "Code", "Results"))
    assert any(re.fullmatch(r"SYNTH_3fold_.*_TIMNET_.*\.json", name) for name in results), results
