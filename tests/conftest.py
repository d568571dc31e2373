import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
EXAMPLES = os.path.join(REPO, "examples")
EXPERIMENTS = os.path.join(HERE, "experiments")


_SHARED: dict = {}  # this test process's own Ray cluster, started on first use


def shared_ray_address() -> str:
    """The address of a Ray this test process started for itself (one head node, 2 CPUs, as
    this machine has), which command lines join with RAY_ADDRESS as a user's on a cluster do.

    Starting a Ray costs 2-3 s and stopping it 1.3 s; a test whose subject is not the Ray a
    command starts joins this one instead. It is this process's own: no other test process
    (pytest-xdist runs several) and no other user of the machine shares it."""
    if "cluster" not in _SHARED:
        import ray._private.utils
        from ray.cluster_utils import Cluster

        # Lean as `pip install ray` (no [default]) starts it: the dashboard agent and API server in
        # their minimal mode, no log monitor (every driver here has log_to_driver=False) and no
        # autoscaler monitor (nothing to scale). Half the idle CPU of a full one, and it stops in
        # 0.1 s instead of 1.1 s. The job-server test starts its own, full head.
        full = ray._private.utils.get_dashboard_dependency_error
        ray._private.utils.get_dashboard_dependency_error = lambda: ImportError("the tests' shared Ray is minimal")
        try:
            cluster = Cluster(initialize_head=True, head_node_args={
                "num_cpus": 2, "include_dashboard": False, "include_log_monitor": False, "no_monitor": True})
        finally:
            ray._private.utils.get_dashboard_dependency_error = full
        cluster.wait_for_nodes()
        _SHARED["cluster"] = cluster
    return _SHARED["cluster"].address


@pytest.fixture(scope="session", autouse=True)
def _stop_shared_ray():
    yield
    cluster = _SHARED.pop("cluster", None)
    if cluster is not None:
        cluster.shutdown()


def pytest_collection_modifyitems(items):
    """A test on this process's Ray (``ray_session``) is slow, marked or not: its first use
    starts the Ray (README's fast run, ``-m "not slow"``, starts none).

    Longest first: the suite keeps both cores busy from start to end, and a long test handed out
    last runs on while the other workers have nothing left. So the ``long`` tests (about 40 s
    or more in a full run) come first, then the other slow ones, and the quick ones last, where
    they fill the gaps (``--dist loadgroup`` hands them out in this order, a few at a time)."""
    for item in items:
        if "ray_session" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
    def order(item):
        long = item.get_closest_marker("long")
        if long is not None:
            return 0, -(long.args[0] if long.args else 1)  # long(3) before long(2) before long
        return (1 if item.get_closest_marker("slow") else 2), 0

    items.sort(key=order)


def interruptible():
    """A child's SIGINT as a terminal's: its default handler, not blocked (a background job of a
    non-interactive shell, or a test process some library left so, would pass SIGINT ignored
    or blocked on to the command a test means to Ctrl-C). Give it as ``preexec_fn``."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])


@pytest.fixture(autouse=True)
def _sigint_left_as_it_was(request):
    """A test that leaves this process's SIGINT ignored or blocked breaks every later test that
    Ctrl-Cs a command it starts (they inherit it): put it back, and name the test when
    SIGCHECK_LOG says where."""
    yield
    blocked = signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler or blocked:
        if os.environ.get("SIGCHECK_LOG"):
            with open(os.environ["SIGCHECK_LOG"], "a") as f:
                f.write(f"{request.node.nodeid}: {signal.getsignal(signal.SIGINT)} blocked={blocked}\n")
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])


def cli_env(private: bool = False, **extra):
    """The environment of a command line a test runs. Its Ray is this test process's shared one
    (``shared_ray_address``), or with ``private`` a new local Ray of the command's own, for
    tests of what a command does with the Ray it starts (or when its driver is killed)."""
    env = dict(os.environ)
    if "RAY_ADDRESS" not in extra:
        # never a Ray that another user of the machine started
        env["RAY_ADDRESS"] = "local" if private else shared_ray_address()
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_cli(args, cwd, timeout=240, env=None, mongo_dump=None):
    """Run a command line like a user would: python <script> ARGS (optionally under mongomock)."""
    cmd = [sys.executable]
    if mongo_dump is not None:
        cmd += [os.path.join(HERE, "mongo_driver.py"), str(mongo_dump)]
    proc = subprocess.run(cmd + [str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env or cli_env())
    return proc


def read_dump(path, db):
    with open(path) as f:
        return json.load(f)[db]


@pytest.fixture
def workdir(tmp_path):
    """A user's project folder holding a copy of the toy experiment."""
    shutil.copy(os.path.join(EXPERIMENTS, "toy.py"), tmp_path / "toy.py")
    return tmp_path


def write(path, text):
    path.write_text(text)
    return path


@pytest.fixture(scope="session")
def ray_session():
    """This test process's Ray (``shared_ray_address``), joined by the in-process tests."""
    import ray

    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    ray.init(address=shared_ray_address(), log_to_driver=False, logging_level="error",
             runtime_env={"env_vars": {"RAY_CHDIR_TO_TRIAL_DIR": "0"}})
    yield ray
    ray.shutdown()


def import_experiment(name):
    """An experiment of tests/experiments imported in this process (the driver)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"{name}_experiment", os.path.join(EXPERIMENTS, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[f"{name}_experiment"] = module
    spec.loader.exec_module(module)
    return module.ex


@pytest.fixture(scope="session")
def toy():
    return import_experiment("toy")


@pytest.fixture(scope="session")
def curves():
    return import_experiment("curves")


@pytest.fixture
def mongo_db():
    """mongomock standing in for a MongoDB server at localhost:27017, database 'sweeps'."""
    import mongomock
    import mongomock.gridfs

    mongomock.gridfs.enable_gridfs_integration()
    with mongomock.patch(servers=(("localhost", 27017),)):
        import pymongo

        yield pymongo.MongoClient("localhost", 27017)["sweeps"]
