"""A grid of runs: ``--mode grid --grid FILE.toml``, every fold a unit of work, on Ray or in this process.

Its points come from the grid file (cli/grid_file.py, docs/grid.md), their plan from grid/plan.py.

Every point becomes the argument list of a training command (flags typed next to ``--mode grid`` apply to every
point the grid file does not set), read and checked by cli/command_line.py like any command line. Its run folder is the
one under ``--model_path`` with the same settings, feature content and results folder (``run_folder.find_run``),
or a new one: a repeated grid skips every finished fold and rewrites no weight file.

The folds left to train go to a pool of workers (Ray actors, or one object in this process with ``--address
none``); a worker keeps the compiled training step of its last model warm and is given folds of the same model
and shapes first. Features go once into Ray's object store. Each fold writes its weights and record atomically
into its run folder (Common_Model.train_and_save_fold); a run's results files are written when its last fold is
done, and ``report.md`` at the end. A worker process that dies mid-fold costs that fold, which is tried again
on a new worker; a fold that fails (bad input) is reported with its error and the other folds go on. Every fold
draws its weights, dropout and batch order from its own seed, and on the CPU the numbers do not depend on the
thread layout, so Ray and ``--address none`` give the same results.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass

from ..core.errors import UserError
from ..core.paths import PACKAGE
from .plan import Plan, PlannedRun, plan, trainer_key


def package_parent() -> str:
    """A folder whose ``timnet_ser`` is a link to this package's folder (``Code/``): Ray workers on this machine
    import the project from there by its package name, whether it is installed or ``main.py`` loaded it as a
    script. It lies in ``ray_security.closed_folder()``, this user's alone: in the temporary folder itself its
    predictable name let another user make it first, with a ``timnet_ser`` of theirs that every worker imported
    and ran. Made once per package location, its link made again where it is not that one link; other nodes of a
    cluster import their installed copy."""
    import hashlib
    import shutil

    from .ray_security import closed_folder
    folder = os.path.join(closed_folder(), f"timnet_ser-{hashlib.sha1(PACKAGE.encode()).hexdigest()[:12]}")
    link = os.path.join(folder, "timnet_ser")
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        if os.path.islink(link) and os.readlink(link) == PACKAGE:
            return folder
        if os.path.isdir(link) and not os.path.islink(link):
            shutil.rmtree(link)
        fresh = f"{link}.{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            os.remove(fresh)
        os.symlink(PACKAGE, fresh)
        os.replace(fresh, link)  # a rename: another grid starting now sees the old link or the new one
    except OSError as exc:  # a full disk, a file system without links: a traceback before
        raise UserError(f"{folder}: the Ray workers' link to the package cannot be made there "
                        f"({exc.strerror or exc}); free space there, or set RAY_TMPDIR to a folder of your "
                        "own") from None
    return folder


# a local Ray gets CPUs / 2 workers of two threads each: on 2 cores no slower than two of one (docs/grid.md)
THREADS_PER_WORKER = 2
FOLD_ATTEMPTS = 3  # a fold whose worker process dies is given to a new worker up to this many times in all


# --- the worker: trains one fold at a time, keeps its last compiled step ------------------------------------------

class FoldWorker:
    """Trains folds of run folders in one process (a Ray actor, or the grid's own process).

    Args:
        threads: TensorFlow threads of this process, split between the model's parallel chains as
            Model.ModelSpec.threads splits cores; None: Common_Model.configure_tensorflow's choice for all cores.
    """

    def __init__(self, threads: int | None = None):
        self.threads = threads
        self.warm = None  # (trainer_key, Trainer) of the last fold
        if threads is not None:  # a fresh worker process: TensorFlow started as the command line starts it
            from ..core.tensorflow_setup import start_tensorflow
            start_tensorflow()

    def _configure(self, config) -> None:
        """Threads and precision before this process' first TensorFlow operation (later: precision only)."""
        from ..Common_Model import configure_run
        from ..Model import MODELS
        configure_run(MODELS[config.model], config.mixed_precision, self.threads)

    def train(self, run_path: str, fold: int, features: tuple) -> dict:
        """Train fold ``fold`` (from 0) of the run in ``run_path`` on ``features`` (x, y); its WAR, UAR, seconds."""
        from ..Common_Model import build_trainer, train_and_save_fold
        from ..Model import MODELS
        from ..runs.run_folder import require_run
        started = time.time()
        x, y = features
        run = require_run(run_path, "--grid")
        spec = MODELS[run.config.model]
        self._configure(run.config)
        key = trainer_key(run.config, x.shape[1:], y.shape[1])
        if self.warm is None or self.warm[0] != key:
            self.warm = None  # the old step's memory goes before the new one is built
            self.warm = (key, build_trainer(spec, run.config, x.shape[1:], y.shape[1]))
        with run.training([fold]):  # another process training it (a --resume, a second grid) is refused
            record = train_and_save_fold(spec, run, self.warm[1], x, y, fold)
        return {"war": record["war"], "uar": record["uar"], "seconds": time.time() - started}


# --- progress ---------------------------------------------------------------------------------------------------

def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """The grid as a whole on stderr, one line per change: folds done / running / failed / total, the mean time
    of a fold trained now, and the time the folds left take at that mean, ``parallel`` at a time."""

    def __init__(self, total: int, done: int, stream=None):
        self.total, self.done, self.running, self.failed, self.retried = total, done, 0, 0, 0
        self.trained, self.fold_seconds, self.parallel = 0, 0.0, 1
        self.stream = stream or sys.stderr

    def show(self, event: str) -> None:
        line = (f"grid: {self.done}/{self.total} folds done, {self.running} running, {self.failed} failed"
                + (f", {self.retried} retried" if self.retried else ""))
        if self.trained:
            mean = self.fold_seconds / self.trained
            left = (self.total - self.done - self.failed) * mean / self.parallel
            line += f"; {mean:.1f} s per fold, about {_duration(left)} left"
        self.stream.write(f"{line} | {event}\n")
        self.stream.flush()

    def started(self, event: str) -> None:
        self.running += 1
        self.show(event)

    def finished(self, event: str, seconds: float) -> None:
        self.running, self.done, self.trained = self.running - 1, self.done + 1, self.trained + 1
        self.fold_seconds += seconds
        self.show(event)

    def failed_fold(self, event: str) -> None:
        self.running, self.failed = self.running - 1, self.failed + 1
        self.show(event)

    def retry(self, event: str) -> None:
        self.running, self.retried = self.running - 1, self.retried + 1
        self.show(event)


# --- running the folds ------------------------------------------------------------------------------------------

@dataclass
class Unit:
    """One fold of one planned run, and how many workers have died training it."""

    run: PlannedRun
    fold: int
    deaths: int = 0

    @property
    def name(self) -> str:
        return f"fold {self.fold + 1}/{self.run.run.k} of {self.run.label}"


class Grid:
    """The plan being carried out: folds done and failed, and a run's results once its last fold is done."""

    def __init__(self, the_plan: Plan):
        self.plan = the_plan
        self.units = deque(Unit(run, fold) for run in the_plan.runs for fold in sorted(run.left))
        total = sum(run.run.k for run in the_plan.runs)
        self.progress = Progress(total, the_plan.finished_before)

    def started(self, unit: Unit, where: str) -> None:
        self.progress.started(f"{unit.name} started{where}")

    def finished(self, unit: Unit, result: dict) -> None:
        self.progress.finished(f"{unit.name}: WAR {result['war'] * 100:.2f}%  UAR {result['uar'] * 100:.2f}%  "
                               f"in {result['seconds']:.1f} s", result["seconds"])
        unit.run.left.discard(unit.fold)
        if not unit.run.left:
            finish(unit.run, self.plan.failures)

    def failed(self, unit: Unit, error: str) -> None:
        self.plan.failures.append((unit.name, error))
        self.progress.failed_fold(f"{unit.name} FAILED: {error}")

    def worker_died(self, unit: Unit, error: str) -> bool:
        """Count a worker's death on ``unit``; True when it goes back to the queue, False when it has failed."""
        unit.deaths += 1
        if unit.deaths >= FOLD_ATTEMPTS:
            self.failed(unit, f"its worker process died {unit.deaths} times (last: {error})")
            return False
        self.progress.retry(f"{unit.name}: its worker process died ({error}); trying it again")
        self.units.appendleft(unit)
        return True


def finish(planned: PlannedRun, failures: list) -> None:
    """A run's results files (xlsx, JSON, pictures) once all its folds are on disk; a failure is recorded."""
    from ..engine.cross_validation import finish_run
    from ..Model import MODELS
    try:
        finish_run(MODELS[planned.run.config.model], planned.run)
    except UserError as exc:
        failures.append((f"results of {planned.label}", str(exc)))
        print(f"grid: results of {planned.label}: {exc}", file=sys.stderr)


def _error(exc: BaseException) -> str:
    """A fold's error in one line: a UserError's message, else the exception's type and first line."""
    if isinstance(exc, UserError):
        return str(exc)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else 'no detail'}"


def run_in_process(grid: Grid) -> None:
    """``--address none``: every fold in this process, one after the other, through one FoldWorker."""
    worker = FoldWorker()
    while grid.units:
        unit = grid.units.popleft()
        grid.started(unit, "")
        try:
            result = worker.train(unit.run.run.path, unit.fold, grid.plan.features[unit.run.features])
        except Exception as exc:  # a bad fold is reported and the grid goes on; Ctrl-C is not an Exception
            grid.failed(unit, _error(exc))
            continue
        grid.finished(unit, result)


def _next_unit(units: deque, warm_key: str | None) -> Unit:
    """The first fold the worker's warm training step fits, else the first fold."""
    for i, unit in enumerate(units):
        if unit.run.trainer_key == warm_key:
            del units[i]
            return unit
    return units.popleft()


def run_on_ray(grid: Grid, workers: int, threads: int, gpus_per_task: float) -> None:
    """Every fold on a pool of ``workers`` Ray actors of ``threads`` CPUs (and ``gpus_per_task`` GPUs) each.

    The features are put into the object store once; an actor that dies (killed, out of memory) is replaced
    and its fold goes back to the queue; a fold that raises is reported and the others go on.
    """
    import ray
    from ray.exceptions import RayError, RayTaskError
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [package_parent(), os.environ.get("PYTHONPATH")])),
           "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    if not gpus_per_task:  # Ray hides GPUs only from tasks that ask for none if told so
        env["CUDA_VISIBLE_DEVICES"] = "-1"
    actor_class = ray.remote(FoldWorker).options(num_cpus=threads, num_gpus=gpus_per_task, max_restarts=0,
                                                 runtime_env={"env_vars": env})
    stored = {sha: ray.put(arrays) for sha, arrays in grid.plan.features.items()}
    grid.progress.parallel = workers
    idle = [(actor_class.remote(threads), None) for _ in range(workers)]  # (actor, its warm trainer key)
    running = {}  # ObjectRef -> (actor, unit)
    try:
        while grid.units or running:
            while idle and grid.units:
                actor, warm = idle.pop()
                unit = _next_unit(grid.units, warm)
                running[actor.train.remote(unit.run.run.path, unit.fold, stored[unit.run.features])] = (actor, unit)
                grid.started(unit, " on a Ray worker")
            [ready], _ = ray.wait(list(running), num_returns=1)
            actor, unit = running.pop(ready)
            try:
                result = ray.get(ready)
            except RayTaskError as exc:  # the fold itself raised: bad input, reported; the worker lives on
                grid.failed(unit, _error(exc.cause if exc.cause is not None else exc))
                idle.append((actor, None))
                continue
            except RayError as exc:  # the worker process is gone: a new one, and the fold again
                ray.kill(actor)
                grid.worker_died(unit, type(exc).__name__)
                idle.append((actor_class.remote(threads), None))
                continue
            grid.finished(unit, result)
            idle.append((actor, unit.run.trainer_key))
    finally:
        for actor in [actor for actor, _ in idle] + [actor for actor, _ in running.values()]:
            ray.kill(actor)


# --- Ray: a local one, or a cluster -----------------------------------------------------------------------------

def start_local_ray(cpus: int, gpus: int | None = 0, object_store_bytes: int = 512 * 2 ** 20) -> None:
    """A Ray on this machine only: every process listening on 127.0.0.1, a token of its own, its files in a folder
    of this user's alone (``ray_security.private_folder``), no dashboard,
    ``cpus`` CPUs, ``gpus`` GPUs (None: the machine's), an object store of ``object_store_bytes``; no usage
    statistics are sent; its processes end when this one does (``fate_sharing``). ``tests/test_grid_network.py``
    lists its listening sockets (docs/grid.md)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    from . import fate_sharing, ray_security
    fate_sharing.share_fate()
    ray_security.use_new_token()
    folder = ray_security.private_folder()
    ray_security.prune_sessions(folder)  # the ended sessions' folders, but the newest few
    # address "local": a new Ray even where `ray start` runs one on this machine (that one is --address auto)
    with ray_security.loopback_node():
        _ray_init(address="local", num_cpus=cpus, num_gpus=gpus, object_store_memory=object_store_bytes,
                  include_dashboard=False, _node_ip_address=ray_security.LOOPBACK, log_to_driver=False,
                  logging_level="ERROR", _temp_dir=folder)


def _ray_init(**settings) -> None:
    """``ray.init(**settings)``, this process' SIGTERM handler kept: Ray's core worker installs absl's, which dumped
    a stack trace and aborted (exit status 134) where the command line ends a grid as Ctrl-C does; and Ray stopped
    where the start itself is interrupted (a Ctrl-C in its first seconds left its agents running)."""
    import ray
    handler = signal.getsignal(signal.SIGTERM)
    try:
        ray.init(**settings)
    except BaseException:
        ray.shutdown()  # what it started so far; the fate-sharing watchdog takes what escapes it
        raise
    finally:
        if handler is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, handler)


CONNECT_SECONDS = 10  # how long a cluster's address may take to answer before the grid says it cannot reach it


def check_reachable(address: str, seconds: float = CONNECT_SECONDS) -> None:
    """One line where nothing answers at ``address`` (host:port or ray://host:port) within ``seconds``: Ray itself
    retried for minutes, ignoring SIGTERM, and swapped a loopback host for the machine's address in its messages."""
    import socket
    host, _, port = address.removeprefix("ray://").rpartition(":")  # the form cli/command_line.py checked
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=seconds).close()
    except OSError as exc:  # refused at once where nothing listens; a timeout where a firewall drops the packets
        why = f"nothing answered within {seconds:g} s" if isinstance(exc, TimeoutError) else exc.strerror or exc
        raise UserError(f"--address {address}: cannot reach a Ray cluster there ({why}); start one with `ray start "
                        "--head`, or leave --address out for a local Ray") from None


def join_cluster(address: str) -> None:
    """Connect to the Ray cluster at ``address`` (auto, host:port or ray://host:port); one line if it fails."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address != "auto":
        check_reachable(address)
    try:
        _ray_init(address=address, log_to_driver=False, logging_level="ERROR")
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise UserError(f"--address {address}: cannot reach a Ray cluster there ({_error(exc)}); start one with "
                        "`ray start --head`; where it asks for a token set RAY_AUTH_MODE=token and the cluster's token "
                        "(RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH) here too (docs/grid.md); or leave --address out "
                        "for a local Ray") from None


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def pool_size(nodes: list[dict], workers: int | None, gpus_per_task: float) -> tuple[int, int]:
    """(workers, threads per worker) for Ray nodes of these resources ({"CPU": n, "GPU": m}).

    ``workers`` (--workers; default: CPUs / THREADS_PER_WORKER) share the CPUs; every worker must fit on one
    node, so no more are made than the nodes hold (a worker that can never start would hold its folds forever).
    """
    cpus = sum(int(node.get("CPU", 0)) for node in nodes)
    wanted = workers or max(1, cpus // THREADS_PER_WORKER)
    if wanted > cpus:
        raise UserError(f"--workers {wanted}: more than the {cpus} CPUs of the Ray cluster (a worker needs one)")
    threads = min(cpus // wanted, max(int(node.get("CPU", 0)) for node in nodes))
    fits = sum(int(node.get("CPU", 0)) // threads for node in nodes)
    if gpus_per_task:
        fits = min(fits, sum(int(node.get("GPU", 0) / gpus_per_task + 1e-9) for node in nodes))
        if not fits:
            raise UserError(f"--gpus_per_task {gpus_per_task:g}: no node of the Ray cluster has that many GPUs")
    return min(wanted, fits), threads


@dataclass(frozen=True)
class Pool:
    """Where the folds train: ``address`` (None: a local Ray; "none": this process; "auto" or ray://host:port: a
    cluster), ``workers`` (None: one per THREADS_PER_WORKER cores) and ``gpus_per_task``."""

    address: str | None = None
    workers: int | None = None
    gpus_per_task: float = 0.0


def connect(pool: Pool, feature_bytes: int) -> tuple[bool, int, int, str]:
    """Reach Ray as ``--address`` says: (whether this grid started it, workers, threads per worker, where).

    An already connected Ray (a program that embeds the grid) is used as it is.
    """
    # not imported before it is known which Ray this is: a local one needs its settings first (start_local_ray)
    started = "ray" not in sys.modules or not sys.modules["ray"].is_initialized()
    if started and pool.address is None:
        # the features once, plus room for Ray's own objects
        start_local_ray(_cores(), None if pool.gpus_per_task else 0, max(256 * 2 ** 20, 2 * feature_bytes))
    elif started:
        join_cluster(pool.address)
    import ray
    nodes = [node["Resources"] for node in ray.nodes() if node["Alive"]]
    try:
        workers, threads = pool_size(nodes, pool.workers, pool.gpus_per_task)
    except UserError:
        if started:
            ray.shutdown()
        raise
    where = "a local Ray" if started and pool.address is None else f"Ray at {pool.address or 'the running Ray'}"
    return started, workers, threads, f"{where}, {workers} worker(s) x {threads} thread(s)"


# --- the command ------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def only_grid_on(path: str):
    """The grid file locked while the grid command runs: a second command on the same file (started twice by
    mistake) is one line; the two split the folds, each called the other's failed, and neither wrote the results.
    Where the file system has no locks (some network or FUSE mounts), a note, and the grid runs unlocked. Opened
    for writing where it may be (NFS and CIFS lock a file so only), never written."""
    try:
        held = open(path, "r+b")
    except OSError:  # a file the user may only read, or on a read-only file system: locked where that allows it
        held = open(path, "rb")
    with held:
        try:
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"--grid {path}: another grid command runs this file now; wait for it to end (run it "
                            "again then, if folds are left)") from None
        except OSError as exc:  # ENOLCK, ENOSYS, EOPNOTSUPP: no flock here; EBADF: NFS, on a read-only file
            print(f"note: --grid {path}: cannot be locked here ({exc.strerror or exc}); do not start the same grid "
                  "twice at once")
        yield


def train_points(path: str, points: list, pool: Pool) -> dict:
    """``--mode grid``: train every fold the grid's runs still lack, write their results and the report (the
    command line holds the grid file's lock meanwhile: ``only_grid_on``).

    Returns {"runs": the run folders, "failures": [(what, error)], "reports": {result_path: report paths}}.
    A ``UserError`` at the end lists the failures (the other runs have finished and been reported).
    """
    from ..runs import report
    the_plan = plan(points)
    grid = Grid(the_plan)
    todo = len(grid.units)
    total = grid.progress.total
    print(f"grid {path}: {_counted(len(points), 'point')}, {_counted(len(the_plan.runs), 'run')}, "
          f"{_counted(total, 'fold')}: "
          f"{the_plan.finished_before} finished before, {todo} to train")
    for planned in _without_results(the_plan.runs):  # every fold was done before, the results files were not
        finish(planned, the_plan.failures)  # (after the header: they were printed before it)
    if todo:
        if pool.address == "none":
            print("training in this process, one fold after another")
            run_in_process(grid)
        else:
            import ray
            feature_bytes = sum(x.nbytes + y.nbytes for x, y in the_plan.features.values())
            try:
                started, workers, threads, where = connect(pool, feature_bytes)
            except BaseException:  # no Ray: the folders this command made would be runs that never ran
                _remove_new_runs(the_plan)
                raise
            try:
                print(f"training on {where}")
                run_on_ray(grid, min(workers, todo), threads, pool.gpus_per_task)
            finally:
                if started:
                    ray.shutdown()
    reports = {}
    for result_path in sorted({planned.run.result_path for planned in the_plan.runs if not planned.left}):
        reports[result_path] = report.write_report(result_path)
    if the_plan.failures:
        print(f"grid: {len(the_plan.failures)} failed:", file=sys.stderr)
        for what, error in the_plan.failures:
            print(f"  {what}: {error}", file=sys.stderr)
        others = "the other runs are done" if the_plan.runs else "no run was made"
        raise UserError(f"--grid {path}: {len(the_plan.failures)} point(s) or fold(s) failed (listed above); "
                        f"{others}. Fix them and run the same grid command again: finished folds are kept")
    return {"runs": [planned.run.path for planned in the_plan.runs], "failures": the_plan.failures,
            "reports": reports}


def _remove_new_runs(the_plan: Plan) -> None:
    """Remove the run folders ``the_plan`` made where nothing was trained in them, and say so."""
    removed = [planned.run.path for planned in the_plan.runs if planned.created and planned.run.remove_if_untrained()]
    if removed:
        print(f"grid: removed the {_counted(len(removed), 'run folder')} it had made (nothing trained in them)",
              file=sys.stderr)


def _counted(count: int, thing: str) -> str:
    """``1 point``, ``2 points`` (the header said "1 points, 1 runs")."""
    return f"{count} {thing}{'' if count == 1 else 's'}"


def _without_results(runs: list[PlannedRun]) -> list[PlannedRun]:
    """The runs with every fold on disk whose results folder holds no training results JSON of their folder."""
    from ..runs import results_records
    complete = [planned for planned in runs if not planned.left]
    written = {(record.get("mode"), record.get("weights_folder"))
               for path in {planned.run.result_path for planned in complete}
               for record in results_records.load_records(path)}
    return [planned for planned in complete if ("train", planned.run.path) not in written]
