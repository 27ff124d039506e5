"""A linearizability checker for histories of compare-and-set registers (Wing & Gong's search
with Lowe's memoization), used by the LWT tests.

A history is a list of operations on one register, each a dict with:
  invoke, complete  -- client-side times; complete is None when the outcome is unknown
                       (a timeout or a lost connection: it may or may not have taken effect)
  kind              -- "read" (result: the value read), "cas" (expected, new; result: applied,
                       and the current value when not applied) or "write" (new; always applies)
An operation may take effect at any instant between its invoke and its complete; an operation
with an unknown outcome may take effect at any instant after its invoke, or never.
"""
import math


def _step(op, value):
    """The register's value after `op` took effect on `value`, or None when `op`'s recorded
    result is impossible from `value`."""
    kind = op["kind"]
    known = op["complete"] is not None
    if kind == "read":
        return value if op["result"] == value else None
    if kind == "write":
        return op["new"]
    if kind == "cas":
        if not known:
            # Taking effect unapplied changes nothing: the same as never taking effect.
            return op["new"] if value == op["expected"] else None
        applied, current = op["result"]
        if applied:
            return op["new"] if value == op["expected"] else None
        return value if value != op["expected"] and current == value else None
    raise ValueError(kind)


def _observed(ops):
    """Values some operation saw as the register's value."""
    seen = set()
    for o in ops:
        if o["kind"] == "read":
            seen.add(o["result"])
        elif o["kind"] == "cas":
            seen.add(o["expected"])
            if o["complete"] is not None and not o["result"][0]:
                seen.add(o["result"][1])
    return seen


def check(history, initial):
    """True when some order of the operations, each placed inside its own time window, explains
    every result. Unknown reads carry no information and are dropped; so is an unknown write
    whose value nobody ever saw (written values are unique, so "it never took effect" explains
    everything such a write could)."""
    ops = [op for op in history if not (op["kind"] == "read" and op["complete"] is None)]
    seen = _observed(ops)
    ops = [o for o in ops if o["complete"] is not None or o["new"] in seen]
    ops.sort(key=lambda o: o["invoke"])
    n = len(ops)
    must = 0
    for i, o in enumerate(ops):
        if o["complete"] is not None:
            must |= 1 << i
    # Known operations by completion time: the first one not yet linearized bounds what may
    # come next (an operation must have started before every pending one ended).
    by_end = sorted((i for i in range(n) if ops[i]["complete"] is not None), key=lambda i: ops[i]["complete"])
    memo = set()
    stack = [(0, initial, 0)]
    while stack:
        done, value, p = stack.pop()
        if done & must == must:
            return True
        if (done, value) in memo:
            continue
        memo.add((done, value))
        while done >> by_end[p] & 1:
            p += 1
        horizon = ops[by_end[p]]["complete"]
        for i in range(n):
            o = ops[i]
            if o["invoke"] >= horizon:
                break
            if done >> i & 1:
                continue
            nxt = _step(o, value)
            if nxt is not None:
                stack.append((done | 1 << i, nxt, p))
    return False
