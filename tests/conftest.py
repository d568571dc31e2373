import json
import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
EXAMPLES = os.path.join(REPO, "examples")
EXPERIMENTS = os.path.join(HERE, "experiments")


def cli_env(**extra):
    env = dict(os.environ)
    env["RAY_ADDRESS"] = "local"  # a private Ray, never one another user of the machine started
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
    """One private local Ray for the in-process tests (Ray start costs seconds)."""
    import ray

    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="error",
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
