#!/usr/bin/env python3
"""Summarizes a chaos run's JSON report (the example's stdout) as the Markdown of RELIABILITY.md:
the run, the per-kind table, the invariants, and the client's memory and descriptors over time.

    python3 scripts/chaos-report.py report.json
"""
import json
import sys


def main(path):
    r = json.load(open(path))
    faults = r["faults"]
    duration = (faults[-1]["started_s"] + faults[-1]["healed_after_s"]) / 60 if faults else 0
    print(f"**{r['replication']}, seed {r['seed']}**: {len(faults)} faults of {len(r['by_kind'])} kinds "
          f"in {duration:.0f} min; {r['operations']:,} operations.\n")
    print("| kind | faults | effect confirmed | failed over | heal p50 / p95 / max (s) | writes lost | stale reads | RYW misses |")
    print("|---|---|---|---|---|---|---|---|")
    for kind, k in r["by_kind"].items():
        checked = k["effective"] + k["no_effect"]
        effect = f"{k['effective']} of {checked}" if checked else "not checked"
        print(f"| `{kind}` | {k['count']} | {effect} | {k['failed_over']} | "
              f"{k['heal_p50_s']:.1f} / {k['heal_p95_s']:.1f} / {k['heal_max_s']:.1f} | "
              f"{k['writes_lost']} | {k['stale_reads']} | {k['ryw_violations']} |")
    print()
    print(f"- inserts acknowledged / failed / outcome unknown: {r['writes_acked']:,} / {r['writes_failed']} / "
          f"{r['writes_outcome_unknown']} (committed after all: {r['unknown_recovered']})")
    print(f"- acknowledged writes lost: {len(r['acked_writes_lost'])} inserts, {r['heartbeats_lost']} heartbeats, "
          f"{r['ryw_writes_lost']} read-your-writes inserts; unplaced {len(r['acked_writes_unplaced'])}; "
          f"unexplained {len(r['unexplained_losses'])}; off the surviving history {len(r['acked_off_history'])}")
    print(f"- acknowledged by a deposed primary: {len(r['deposed_acks'])}; duplicates: {len(r['duplicates'])}; "
          f"failed but committed: {len(r['failed_but_committed'])}")
    print(f"- stale reads: {r['stale_reads']}; session reads that went back: {r['session_reads_back']}; "
          f"read-your-writes misses: {r['ryw_violations']}")
    print(f"- errors surfaced: {r['errors_by_kind']}; longest operation {r['longest_operation_ms'] / 1000:.1f} s; "
          f"panics {r['panics']}; in flight after {r['in_flight_after']}; members' checksums "
          f"{'identical' if len(set(r['checksums'].values())) == 1 else 'DIFFER'}")
    res = r.get("resources", [])
    if res:
        step = max(1, len(res) // 6)
        points = res[::step] + ([res[-1]] if (len(res) - 1) % step else [])
        print("- client process over the run (minutes: RSS MiB, open descriptors, operations recorded): " +
              "; ".join(f"{p['at_s'] / 60:.0f}: {p['rss_kib'] / 1024:.0f}, {p['fds']}, {p['ops']:,}" for p in points))
    print(f"- **violations**: {r['violations'] if r['violations'] else 'none'}")


if __name__ == "__main__":
    main(sys.argv[1])
