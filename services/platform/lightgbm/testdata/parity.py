#!/usr/bin/env python3
"""Python LightGBM side of the Go binding's parity tests (run with the project venv python).

Subcommands:
  fixture OUTDIR           regenerate the committed fixture: a deterministic synthetic
                           fraud-like dataset, a 10-tree binary model (model.txt) and the
                           input rows (rows.csv). Run once; review the diff like code.
  predict MODEL ROWS       print JSON {"normal", "raw", "contrib"} for every row of ROWS
                           (CSV with a header) scored by MODEL with Booster.predict.
  train DIR                train from DIR/meta.json and the raw little-endian float64 files
                           the Go test wrote (train/valid/test x and y), print JSON with the
                           best iteration, test predictions, sklearn's AUC and the model text.

Floats are printed with repr (shortest round-trip form), so Go parses them exactly.
"""
import json
import os
import sys

import lightgbm as lgb
import numpy as np

FEATURES = [
    "amount",
    "location_score",
    "device_risk",
    "secs_since_last_tx",
    "hour_of_day",
    "merchant_risk",
]


def synth_fraud(n, rng):
    """A fraud-like table: skewed amounts, risk scores, time gaps, ~8% positives, some NaNs."""
    amount = rng.lognormal(mean=3.5, sigma=1.2, size=n)
    location = rng.uniform(0.0, 1.0, size=n)
    device = rng.beta(2.0, 5.0, size=n)
    gap = rng.exponential(scale=3600.0, size=n)
    hour = rng.integers(0, 24, size=n).astype(np.float64)
    merchant = rng.uniform(0.0, 1.0, size=n)
    logit = (
        -4.2
        + 0.9 * np.log1p(amount) / 4.0
        + 2.2 * location
        + 3.0 * device
        - 0.6 * np.log1p(gap) / 8.0
        + 0.8 * ((hour < 6) | (hour > 22))
        + 1.1 * merchant * device
    )
    y = (rng.uniform(size=n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.float64)
    X = np.column_stack([amount, location, device, gap, hour, merchant])
    # Missing device risk on ~3% of rows exercises LightGBM's missing-value routing.
    X[rng.uniform(size=n) < 0.03, 2] = np.nan
    return X, y


def fixture(outdir):
    rng = np.random.default_rng(20240611)
    X, y = synth_fraud(20000, rng)
    params = {
        "objective": "binary",
        "metric": "auc",
        "num_leaves": 15,
        "learning_rate": 0.1,
        "min_data_in_leaf": 20,
        "deterministic": True,
        "num_threads": 1,
        "seed": 7,
        "verbosity": -1,
    }
    ds = lgb.Dataset(X, label=y, feature_name=FEATURES, free_raw_data=False)
    booster = lgb.train(params, ds, num_boost_round=10)
    booster.save_model(os.path.join(outdir, "model.txt"))

    rows, _ = synth_fraud(200, np.random.default_rng(99))
    edge = np.array(
        [
            [np.nan] * len(FEATURES),
            [0.0] * len(FEATURES),
            [1e9, 1.0, 1.0, 0.0, 3.0, 1.0],
            [0.01, 0.0, 0.0, 1e7, 12.0, 0.0],
            [-5.0, -1.0, np.nan, -1.0, 25.0, 2.0],
        ]
    )
    rows = np.vstack([rows, edge])
    with open(os.path.join(outdir, "rows.csv"), "w") as f:
        f.write(",".join(FEATURES) + "\n")
        for r in rows:
            f.write(",".join(repr(float(v)) for v in r) + "\n")


def read_rows(path):
    with open(path) as f:
        f.readline()
        return np.array([[float(v) for v in line.strip().split(",")] for line in f if line.strip()])


def predict(model, rows_path):
    booster = lgb.Booster(model_file=model)
    X = read_rows(rows_path)
    out = {
        "normal": booster.predict(X).tolist(),
        "raw": booster.predict(X, raw_score=True).tolist(),
        "contrib": booster.predict(X, pred_contrib=True).tolist(),
        "num_features": booster.num_feature(),
        "feature_names": booster.feature_name(),
        "version": lgb.__version__,
    }
    json.dump(out, sys.stdout)


def load(d, name, cols):
    x = np.fromfile(os.path.join(d, name + "_x.f64"), dtype="<f8").reshape(-1, cols)
    y = np.fromfile(os.path.join(d, name + "_y.f64"), dtype="<f8")
    return x, y


def train(d):
    from sklearn.metrics import roc_auc_score

    with open(os.path.join(d, "meta.json")) as f:
        meta = json.load(f)
    cols = meta["cols"]
    names = meta["feature_names"]
    params = dict(meta["params"])
    xtr, ytr = load(d, "train", cols)
    xva, yva = load(d, "valid", cols)
    xte, yte = load(d, "test", cols)
    dtr = lgb.Dataset(xtr, label=ytr, feature_name=names)
    dva = lgb.Dataset(xva, label=yva, reference=dtr, feature_name=names)
    booster = lgb.train(
        params,
        dtr,
        num_boost_round=meta["rounds"],
        valid_sets=[dva],
        valid_names=["valid"],
        callbacks=[lgb.early_stopping(meta["early_stopping"], verbose=False)],
    )
    pred = booster.predict(xte, num_iteration=booster.best_iteration)
    json.dump(
        {
            "best_iteration": booster.best_iteration,
            "best_score": booster.best_score["valid"][params["metric"]],
            "pred": pred.tolist(),
            "auc": roc_auc_score(yte, pred),
            "model": booster.model_to_string(num_iteration=booster.best_iteration),
        },
        sys.stdout,
    )


def main(argv):
    if len(argv) >= 2 and argv[0] == "fixture":
        fixture(argv[1])
    elif len(argv) >= 3 and argv[0] == "predict":
        predict(argv[1], argv[2])
    elif len(argv) >= 2 and argv[0] == "train":
        train(argv[1])
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
