"""One synthetic instance solved by branch-and-bound with a long time limit (certificate trace).

    uv run python packages/graphl0bnb/bench/gap_run.py --graph random --p 1000 --n 500 \
        --l0 0.02757 --time-limit 600 \
        > packages/graphl0bnb/bench/results-gap/random-p1000-n500-600s.log 2>&1

Same data as ``graphl0bnb bench`` at ``--seeds S`` (precision seed S, sample seed S + 1; the
default --seed 0 is the bench's default). Prints the progress table (nodes, open nodes, upper and
lower bound, relative gap, time) on stderr and the final certificate as JSON on stdout.
"""

from __future__ import annotations

import argparse
import json

from graphl0bnb import GraphL0BnB, make_precision, sample

from labcore.metrics import support_recovery

ap = argparse.ArgumentParser()
ap.add_argument("--graph", default="random")
ap.add_argument("--p", type=int, default=1000)
ap.add_argument("--n", type=int, default=500)
ap.add_argument("--l0", type=float, default=None)
ap.add_argument("--l2", type=float, default=1.0)
ap.add_argument("--time-limit", type=float, default=600.0)
ap.add_argument("--seed", type=int, default=0, help="precision seed; the sample uses seed + 1")
args = ap.parse_args()
truth = make_precision(args.graph, args.p, seed=args.seed)
X = sample(truth, args.n, seed=args.seed + 1)
est = GraphL0BnB(l0=args.l0, l2=args.l2, time_limit=args.time_limit, verbose=True).fit(X)
m = support_recovery(truth, est.theta_standardized_)
print(
    json.dumps(
        {
            "graph": args.graph,
            "p": args.p,
            "n": args.n,
            "seed": args.seed,
            "l0": est.l0_,
            "l2": args.l2,
            "time_limit": args.time_limit,
            "status": est.status_,
            "objective": est.objective_,
            "lower_bound": est.lower_bound_,
            "gap_relative": est.gap_,
            "gap_absolute": est.gap_abs_,
            "nodes": est.n_nodes_,
            "time_s": est.time_,
            "edges": est.n_edges_,
            "f1": m["f1"],
            "mcc": m["mcc"],
        },
        indent=2,
    )
)
