"""W2 through the server: the first search of a fresh client on 100,000 runs.

A notebook that starts, connects and searches pays for the run index (one wide frame of every
run, :mod:`workbench.tracking.search`) when it opens the file itself: its process builds the
index on its first search. Through ``workbench serve`` the server holds the index and keeps it
current, so a new client's first search should cost what any search costs.

Side by side in one run, on W2's cached 100k-run store (``w2_search.py`` builds it):

- **file**: a fresh Python process opens the store file and runs W2's filter: its first search;
- **server**: a fresh Python process connects to the server holding the same file (token) and
  runs the same filter: its first search. The server was started before and has answered one
  search (or warmed its index at start-up): the state a team's server is in.

The file side opens a copy of the file (the served one refuses other processes). Each side
runs ``--reps`` fresh processes, alternating; timed inside the child, from the call
to the frame in hand (both return the same runs: checked by run id). Connecting and importing
are not timed (both sides alike). Medians.

Run by hand:  python bench/w2_server_search.py [--reps 7]
The bar (issue 17): the server side under 100 ms.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    banner,
    fmt_s,
    fresh_dir,
    log,
    median,
    workbench_server,
    write_results,
)
from w2_search import FILTER, N_BIG, big_store_path, open_big_store  # noqa: E402

BAR_S = 0.100
CHILD = """
import hashlib, json, sys, time
import workbench as wb
where, token, flt = sys.argv[1], sys.argv[2], sys.argv[3]
ws = wb.connect(where, token=token) if token else wb.connect(where)
t = time.perf_counter()
found = ws.search_runs(flt)
secs = time.perf_counter() - t
ids = sorted(found["run_id"].to_list())
print(json.dumps({"seconds": secs, "rows": found.height, "cols": found.width,
                  "ids": hashlib.sha256("\\n".join(ids).encode()).hexdigest()}))
"""


def fresh_search(where: str, token: str = "") -> dict:
    """One fresh process: connect (untimed), then its first search (timed inside it)."""
    out = subprocess.run([sys.executable, "-c", CHILD, where, token, FILTER], capture_output=True, text=True,
                         timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"the client failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=7, help="fresh processes per side (default 7)")
    args = ap.parse_args()
    banner(f"W2 through the server: a fresh client's first search on {N_BIG:,} runs ({FILTER})")
    from workbench.store import shared
    from workbench.workspace import operator_workspace

    ws, _ = open_big_store(rebuild=False)  # builds the store once if it is not cached
    token = operator_workspace(ws.store.location).create_token("w2 server search", user="bench")["token"]
    ws.close()
    shared.close_all()  # checkpointed: the file alone holds every commit
    served = big_store_path()
    with fresh_dir("w2s") as folder:
        # the file side opens a copy: the served file refuses other processes
        copy = folder / served.name
        for src in (served, served.with_name(served.name + ".head")):
            if src.exists():
                shutil.copy(src, folder / src.name)
        file_side, server_side = [], []
        with workbench_server(served, folder / "serve.log") as url:
            warm = fresh_search(url, token)  # the server's first search since it started: untimed
            log(f"  server up at {url}; its first search since start took {fmt_s(warm['seconds'])} (not counted)")
            for _ in range(args.reps):  # alternating, so both sides meet the same machine
                server_side.append(fresh_search(url, token))
                file_side.append(fresh_search(str(copy)))
    assert {r["ids"] for r in file_side + server_side} == {file_side[0]["ids"]}, "the two sides found other runs"
    f = median([r["seconds"] for r in file_side])
    s = median([r["seconds"] for r in server_side])
    log(f"  file:   first search in a fresh process, median {fmt_s(f)} over {len(file_side)} "
        f"({file_side[0]['rows']:,} runs x {file_side[0]['cols']} columns)")
    log(f"  server: first search of a fresh client, median {fmt_s(s)} over {len(server_side)}")
    log(f"  ratio file/server {f / s:.1f}x; bar {fmt_s(BAR_S)}: {'met' if s < BAR_S else 'NOT met'}")
    path = write_results("w2_server_search", {
        "n_runs": N_BIG, "filter": FILTER, "reps": args.reps, "bar_s": BAR_S,
        "file_seconds": [r["seconds"] for r in file_side], "server_seconds": [r["seconds"] for r in server_side],
        "file_median_s": f, "server_median_s": s, "ratio": f / s, "meets_bar": s < BAR_S,
        "server_first_since_start_s": warm["seconds"], "rows": file_side[0]["rows"]})
    log(f"results: {path}")


if __name__ == "__main__":
    main()
