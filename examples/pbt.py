"""PBT on scikit-learn: an SGD classifier on the bundled digits data, trained epoch by epoch.

    python examples/pbt.py with eta0=0.05                        # one plain Sacred run
    python examples/pbt.py tune_with examples/pbt.yaml -F runs   # PBT: 8 trials, eta0 and alpha mutated
    python examples/pbt.py tune_with examples/pbt_random.yaml -F runs   # random search, same budget

The model is the trial's state: saved after every epoch with ``sacred_ray.save`` and restored
with ``sacred_ray.restore``, so when PBT copies a better trial into a worse one (an exploit) the
new run goes on training the donor's model, with its own (mutated) eta0 and alpha.
"""

import warnings

import numpy as np
from sacred import Experiment
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import sacred_ray

ex = Experiment("pbt_digits")


@ex.config
def config():
    epochs = 24
    eta0 = 0.01  # SGD's constant learning rate
    alpha = 1e-4  # L2 penalty
    batch_size = 32
    data_seed = 0


def load(data_seed):
    X, y = load_digits(return_X_y=True)
    X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.3, random_state=data_seed, stratify=y)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_val), y_train, y_val


@ex.automain
@ex.distribute(num_cpus=0.25)
def main(epochs, eta0, alpha, batch_size, data_seed, _run, _seed):
    X_train, X_val, y_train, y_val = load(data_seed)
    state = sacred_ray.restore()
    if state:  # a restart, or a PBT exploit: go on with that model, under this run's eta0 and alpha
        model, start = state["model"], state["epoch"] + 1
        model.set_params(eta0=eta0, alpha=alpha)
    else:
        model, start = SGDClassifier(loss="log_loss", learning_rate="constant", eta0=eta0, alpha=alpha,
                                     random_state=_seed % 2**32), 0
    rng = np.random.default_rng(_seed)
    classes = np.unique(y_train)
    accuracy = float("nan")
    for epoch in range(start, epochs):
        order = rng.permutation(len(X_train))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for i in range(0, len(order), batch_size):
                batch = order[i:i + batch_size]
                model.partial_fit(X_train[batch], y_train[batch], classes=classes)
        accuracy = float(model.score(X_val, y_val))
        _run.log_scalar("val_accuracy", accuracy, epoch)
        sacred_ray.save({"model": model, "epoch": epoch})
    return accuracy
