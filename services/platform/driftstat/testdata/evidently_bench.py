"""Time Evidently's data-drift preset on the data of BenchmarkDriftStats1M.

The data are the .npy files TestWriteBenchData writes (ref_NN.npy and cur_NN.npy, one pair
per feature, the same generator and seed as the Go benchmark). One run is one Report with
three DataDriftPresets, PSI, KS and Jensen-Shannon with explicit thresholds, over every
feature: the same three statistics BenchmarkDriftStats1M computes. Only Report.run is timed;
loading the files and building the DataFrames are not.

Usage: evidently_bench.py --dir DIR [--runs 3]
Prints one line per run ("run N SECONDS") and then "median SECONDS".
"""

import argparse
import glob
import os
import statistics
import sys
import time
import warnings

import numpy as np
import pandas as pd

# Evidently 0.7.23 imports pandas.core.dtypes.common.infer_dtype_from_object, which pandas 3
# removed; only a data-integrity test we do not run uses it. Provide it so the import works
# with the unpinned pandas of the project virtualenv.
import pandas.core.dtypes.common as _pdc

if not hasattr(_pdc, "infer_dtype_from_object"):
    _pdc.infer_dtype_from_object = lambda t: _pdc.pandas_dtype(t).type

from evidently import DataDefinition, Dataset, Report  # noqa: E402
from evidently.presets import DataDriftPreset  # noqa: E402

THRESHOLDS = {"psi": 0.1, "ks": 0.05, "jensenshannon": 0.1}


def load(directory):
    refs = sorted(glob.glob(os.path.join(directory, "ref_*.npy")))
    if not refs:
        sys.exit(f"no ref_*.npy in {directory}: run TestWriteBenchData with MLOPS_DRIFT_BENCH_DIR={directory}")
    ref, cur = {}, {}
    for path in refs:
        name = "f" + os.path.basename(path)[len("ref_") : -len(".npy")]
        ref[name] = np.load(path)
        cur[name] = np.load(path.replace("ref_", "cur_"))
    return pd.DataFrame(ref), pd.DataFrame(cur)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    ref, cur = load(args.dir)
    definition = DataDefinition(numerical_columns=list(ref.columns))
    reference = Dataset.from_pandas(ref, data_definition=definition)
    current = Dataset.from_pandas(cur, data_definition=definition)
    print(f"features {ref.shape[1]} reference rows {ref.shape[0]} current rows {cur.shape[0]}", flush=True)

    times = []
    for i in range(args.runs):
        report = Report([DataDriftPreset(method=m, threshold=t) for m, t in THRESHOLDS.items()])
        start = time.perf_counter()
        report.run(reference_data=reference, current_data=current)
        times.append(time.perf_counter() - start)
        print(f"run {i + 1} {times[-1]:.3f}", flush=True)
    print(f"median {statistics.median(times):.3f}")


if __name__ == "__main__":
    main()
