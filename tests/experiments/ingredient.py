"""Sacred's examples/ingredient.py (a dataset ingredient and its captured function), with
sacred-ray, and a _log line as an experiment that logs has."""
from sacred import Experiment, Ingredient

import sacred_ray  # noqa: F401

# ================== Dataset Ingredient =======================================
data_ingredient = Ingredient("dataset")


@data_ingredient.config
def cfg1():
    filename = "my_dataset.npy"  # dataset filename
    normalize = True  # normalize dataset


@data_ingredient.capture
def load_data(filename, normalize, _log):
    print(f"loading dataset from '{filename}'")
    _log.info("reading %s", filename)
    if normalize:
        print("normalizing dataset")
        return 1
    return 42


# ================== Experiment ===============================================
ex = Experiment("my_experiment", ingredients=[data_ingredient])


@ex.config
def cfg3():
    a = 12
    b = 42


@ex.automain
@ex.distribute
def run(a):
    data = load_data()  # just use the function
    print(f"data={data}")
    return a
