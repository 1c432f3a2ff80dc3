"""driftstat vs Evidently 0.7 on the data of make bench-drift, with verdicts and peak memory.

make bench-peers runs this with the project virtualenv's Python (Evidently is installed there).
It reuses make bench-drift's pieces: services/platform/driftstat's TestWriteBenchData writes
16 features x 1M reference and 1M current rows as .npy files (and logs our PSI, JS and KS on
them), BenchmarkDriftStats1M times our batch comparison, and
driftstat/testdata/evidently_bench.py times Evidently's Report with PSI, KS and JS
DataDriftPresets. This script adds the verdicts on both sides (PSI >= 0.1, KS p < 0.05,
JS >= 0.1 in Evidently's natural-log distance, which is 0.1/sqrt(ln 2) in our base-2 one) and
each side's peak resident memory (the child process's ru_maxrss).

Usage: drift_bench.py --root REPO --out drift.json [--runs 3] [--evidently-runs 1]

--runs repeats driftstat's benchmark, --evidently-runs Evidently's Report (about 150 s a run on
an idle 2-core machine, which is why one is the default).
"""

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile

THRESHOLDS = {"psi": 0.1, "ks": 0.05, "jensenshannon": 0.1}


def run_child(cmd, env=None, cwd=None):
    """Runs cmd, returns (stdout, peak RSS MiB of that process)."""
    with tempfile.TemporaryFile() as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode()
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({p.returncode}):\n{text}")
    return text, ru.ru_maxrss / 1024


def evidently_child(directory, runs):
    """Child mode: times Report.run with the three presets runs times (loading the files and
    building the datasets are not timed, as in evidently_bench.py) and prints the times and the
    per-column values of the first run as JSON."""
    import time
    import warnings

    warnings.simplefilter("ignore")
    sys.path.insert(0, os.path.dirname(os.path.abspath(EVIDENTLY_BENCH)))
    import evidently_bench as eb  # make bench-drift's loader, with its pandas-3 shim
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    ref, cur = eb.load(directory)
    definition = DataDefinition(numerical_columns=list(ref.columns))
    reference = Dataset.from_pandas(ref, data_definition=definition)
    current = Dataset.from_pandas(cur, data_definition=definition)
    times, values = [], {}
    pat = re.compile(r"ValueDrift\(column=(\w+),method=(\w+),threshold=")
    for i in range(runs):
        report = Report([DataDriftPreset(method=m, threshold=t) for m, t in THRESHOLDS.items()])
        start = time.perf_counter()
        snap = report.run(reference_data=reference, current_data=current)
        times.append(time.perf_counter() - start)
        if i == 0:
            for m in snap.dict()["metrics"]:
                mm = pat.match(m.get("metric_name") or m.get("metric_id") or "")
                if mm:
                    values.setdefault(mm.group(1), {})[mm.group(2)] = float(m["value"])
    print(json.dumps({"times": times, "values": values}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--evidently-runs", type=int, default=1)
    ap.add_argument("--evidently-child", metavar="DIR", help=argparse.SUPPRESS)
    args = ap.parse_args()
    global EVIDENTLY_BENCH
    platform = os.path.join(args.root, "services", "platform")
    EVIDENTLY_BENCH = os.path.join(platform, "driftstat", "testdata", "evidently_bench.py")
    if args.evidently_child:
        evidently_child(args.evidently_child, args.evidently_runs)
        return

    with tempfile.TemporaryDirectory() as d:
        binary = os.path.join(d, "driftstat.test")
        subprocess.run(["go", "test", "-c", "-o", binary, "./driftstat/"], cwd=platform, check=True)
        data = os.path.join(d, "data")
        os.mkdir(data)
        env = dict(os.environ, MLOPS_DRIFT_BENCH_DIR=data)
        text, _ = run_child([binary, "-test.run", "^TestWriteBenchData$", "-test.v"], env=env, cwd=os.path.join(platform, "driftstat"))
        ours = {}
        for m in re.finditer(r"feature (\d+): PSI (\S+) JS (\S+) KS D (\S+) p (\S+)", text):
            ours["f" + m.group(1)] = {"psi": float(m.group(2)), "jensenshannon": float(m.group(3)), "ks": float(m.group(5))}
        if len(ours) != 16:
            sys.exit(f"TestWriteBenchData logged {len(ours)} features, want 16:\n{text}")

        times, peaks = [], []
        for _ in range(args.runs):
            text, peak = run_child([binary, "-test.run", "^$", "-test.bench", "^BenchmarkDriftStats1M$", "-test.benchtime", "1x"],
                                   cwd=os.path.join(platform, "driftstat"))
            m = re.search(r"BenchmarkDriftStats1M\S*\s+\d+\s+(\d+) ns/op", text)
            if not m:
                sys.exit(f"no BenchmarkDriftStats1M result:\n{text}")
            times.append(int(m.group(1)) / 1e9)
            peaks.append(peak)

        text, ev_peak = run_child([sys.executable, os.path.abspath(__file__), "--root", args.root, "--out", "-",
                                   "--evidently-runs", str(args.evidently_runs), "--evidently-child", data])
        ev = json.loads(text.strip().splitlines()[-1])
        ev_times, theirs = ev["times"], ev["values"]

    js_ours = THRESHOLDS["jensenshannon"] / math.sqrt(math.log(2))
    verdict = {
        "ours": lambda m, v: v >= js_ours if m == "jensenshannon" else (v < THRESHOLDS[m] if m == "ks" else v >= THRESHOLDS[m]),
        "theirs": lambda m, v: v < THRESHOLDS[m] if m == "ks" else v >= THRESHOLDS[m],
    }
    rows, agree = [], 0
    for col in sorted(ours):
        for method in ("psi", "ks", "jensenshannon"):
            o, t = ours[col][method], theirs[col][method]
            vo, vt = verdict["ours"](method, o), verdict["theirs"](method, t)
            agree += vo == vt
            rows.append({"feature": col, "method": method, "ours": o, "evidently": t, "ours_drift": vo, "evidently_drift": vt})
    result = {
        "driftstat_seconds": statistics.median(times),
        "driftstat_runs": times,
        "driftstat_peak_rss_mib": max(peaks),
        "evidently_seconds": statistics.median(ev_times),
        "evidently_runs": ev_times,
        "evidently_peak_rss_mib": ev_peak,
        "speedup": statistics.median(ev_times) / statistics.median(times),
        "verdict_pairs": len(rows),
        "verdicts_agreeing": agree,
        "verdicts": rows,
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"driftstat {result['driftstat_seconds']:.2f} s, Evidently {result['evidently_seconds']:.2f} s, "
          f"{result['speedup']:.0f}x; verdicts agree {agree}/{len(rows)}")


EVIDENTLY_BENCH = ""

if __name__ == "__main__":
    main()
