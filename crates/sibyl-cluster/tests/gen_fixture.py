#!/usr/bin/env python3
"""Generates tests/fixtures/driver_placement.json: replica placement as the Python driver
(cassandra-driver, cassandra.metadata) computes it, the oracle for sibyl-cluster's placement.

    python3 -m venv /tmp/cv && /tmp/cv/bin/pip install cassandra-driver
    /tmp/cv/bin/python crates/sibyl-cluster/tests/gen_fixture.py

Rings of 1-6 nodes x 1-16 tokens in 1-2 DCs and 1-3 racks are built with fake hosts, each
keyspace's strategy is created from its replication options through the driver's
KeyspaceMetadata, and TokenMap.get_replicas (the method behind cluster.metadata.get_replicas)
answers for every ring token, every ring token + 1, and the extreme tokens. Output is
deterministic (fixed seed).
"""

import json
import os
import random

import cassandra
from cassandra.metadata import KeyspaceMetadata, Murmur3Token, TokenMap

MIN, MAX = -(2**63), 2**63 - 1


class FakeHost:
    """What make_token_replica_map reads of a Host: datacenter, rack, identity."""

    def __init__(self, idx, dc, rack):
        self.idx, self.datacenter, self.rack = idx, dc, rack

    def __repr__(self):
        return "host%d(%s/%s)" % (self.idx, self.datacenter, self.rack)


class FakeMetadata:
    def __init__(self, keyspaces):
        self.keyspaces = keyspaces


def strategies_for(rng, dcs):
    out = [{"class": "SimpleStrategy", "replication_factor": str(rf)} for rf in (1, 2, 3)]
    out.append({"class": "org.apache.cassandra.locator.SimpleStrategy",
                "replication_factor": str(rng.randint(4, 7))})
    for _ in range(4):
        o = {"class": "NetworkTopologyStrategy"}
        for dc in dcs:
            o[dc] = str(rng.choice([0, 1, 2, 2, 3, 3, 4, 5]))
        out.append(o)
    o = {"class": "org.apache.cassandra.locator.NetworkTopologyStrategy"}
    o[dcs[0]] = "3"
    o["dc_missing"] = "2"  # a DC with no node
    out.append(o)
    return out


def main():
    rng = random.Random(20240611)
    cases = []
    for case_no in range(90):
        n = rng.randint(1, 6)
        ndc = rng.randint(1, 2)
        nracks = rng.randint(1, 3)
        vnodes = rng.choice([1, 1, 2, 3, 4, 8, 16])
        dcs = ["dc%d" % (d + 1) for d in range(ndc)]
        nodes = []
        for i in range(n):
            # Round-robin DCs so both DCs have nodes when there are enough of them.
            dc = dcs[i % ndc] if rng.random() < 0.8 else rng.choice(dcs)
            rack = "rack%d" % rng.randint(1, nracks)
            nodes.append((dc, rack))
        used = set()
        tokens = []
        for i in range(n):
            ts = []
            while len(ts) < vnodes:
                # Mostly wide random tokens, sometimes clustered ones (close neighbours).
                if rng.random() < 0.2:
                    t = rng.randint(-1000, 1000)
                else:
                    t = rng.randint(MIN + 1, MAX)
                if t not in used:
                    used.add(t)
                    ts.append(t)
            tokens.append(sorted(ts))

        hosts = [FakeHost(i, dc, rack) for i, (dc, rack) in enumerate(nodes)]
        owner = {}
        for i, ts in enumerate(tokens):
            for t in ts:
                owner[Murmur3Token(t)] = hosts[i]
        ring = sorted(owner.keys())
        queries = sorted({MIN, MIN + 1, MAX} | set(used) | {min(t + 1, MAX) for t in used})

        present_dcs = sorted({dc for dc, _ in nodes})
        strategies = []
        keyspaces = {}
        for k, opts in enumerate(strategies_for(rng, present_dcs)):
            name = "ks%d" % k
            cls = opts["class"]
            options = {key: v for key, v in opts.items() if key != "class"}
            keyspaces[name] = KeyspaceMetadata(name, True, cls, options)
            strategies.append((name, opts))
        token_map = TokenMap(Murmur3Token, owner, ring, FakeMetadata(keyspaces))
        out_strategies = []
        for name, opts in strategies:
            answers = []
            for q in queries:
                reps = token_map.get_replicas(name, Murmur3Token(q))
                answers.append([q, [h.idx for h in reps]])
            out_strategies.append({"options": opts, "replicas": answers})
        cases.append({
            "case": case_no,
            "nodes": [{"dc": dc, "rack": rack} for dc, rack in nodes],
            "tokens": tokens,
            "strategies": out_strategies,
        })

    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "fixtures", "driver_placement.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"driver_version": cassandra.__version__, "cases": cases}, f,
                  separators=(",", ":"))
        f.write("\n")
    print("wrote %s: %d cases" % (path, len(cases)))


if __name__ == "__main__":
    main()
