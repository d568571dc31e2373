"""Digits: a small MLP on scikit-learn's bundled digits data, trained epoch by epoch.

    python examples/digits.py with lr=0.01                       # one plain Sacred run
    python examples/digits.py ray_sweep with examples/grid.yaml -F runs
    python examples/digits.py tune_with examples/space.yaml -F runs
"""

import warnings

import numpy as np
from sacred import Experiment
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

import sacred_ray  # noqa: F401  (adds Experiment.distribute)

ex = Experiment("digits")


@ex.config
def config():
    epochs = 15
    batch_size = 64
    optimizer = {"name": "adam", "lr": 0.001}
    hidden = [64]
    alpha = 1e-4
    data_seed = 0


@ex.named_config
def small():
    hidden = [32]


@ex.named_config
def large():
    hidden = [128, 64]


@ex.automain
@ex.distribute(num_cpus=1)
def main(epochs, batch_size, optimizer, hidden, alpha, data_seed, _run, _seed):
    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=data_seed)
    x_train, x_val, y_train, y_val = train_test_split(x_train, y_train, test_size=0.2, random_state=data_seed)
    model = MLPClassifier(
        hidden_layer_sizes=tuple(hidden), solver=optimizer["name"], alpha=alpha,
        learning_rate_init=optimizer["lr"], batch_size=batch_size, random_state=_seed,
    )
    classes = np.unique(y)
    for epoch in range(epochs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.partial_fit(x_train, y_train, classes=classes)
        proba = np.clip(model.predict_proba(x_val), 1e-12, 1.0)
        val_loss = float(-np.mean(np.log(proba[np.arange(len(y_val)), y_val])))
        val_accuracy = float(model.score(x_val, y_val))
        _run.log_scalar("val_loss", val_loss, epoch)
        _run.log_scalar("val_accuracy", val_accuracy, epoch)
    test_accuracy = float(model.score(x_test, y_test))
    print(f"test accuracy {test_accuracy:.4f}")
    return test_accuracy
