"""One connection carries many requests at once: a slow request must not hold up the quick
ones sent after it on the same connection (the driver keeps one connection per host)."""

import threading
import time

from cassandra.query import BatchStatement, BatchType


def test_slow_scan_does_not_stall_point_reads(session, fresh_keyspace):
    ks = fresh_keyspace
    session.execute(f"CREATE TABLE {ks}.big (p int, c int, v text, PRIMARY KEY (p, c))")
    ins = session.prepare(f"INSERT INTO {ks}.big (p, c, v) VALUES (?, ?, ?)")
    value = "x" * 200
    futures = []
    for p in range(60):
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        for c in range(1000):
            batch.add(ins, (p, c, value))
        futures.append(session.execute_async(batch))
    for f in futures:
        f.result()

    slow = session.prepare(f"SELECT count(*) FROM {ks}.big")
    quick = session.prepare(f"SELECT v FROM {ks}.big WHERE p = ? AND c = ?")
    started = time.monotonic()
    assert session.execute(slow).one()[0] == 60_000
    alone = time.monotonic() - started

    done: dict[str, float] = {}
    lock = threading.Lock()

    def finished(name):
        def record(_rows):
            with lock:
                done[name] = time.monotonic()

        return record

    slow_future = session.execute_async(slow)
    slow_future.add_callback(finished("slow"))
    quick_futures = []
    for i in range(20):
        f = session.execute_async(quick, (i, i))
        f.add_callback(finished(f"quick{i}"))
        quick_futures.append(f)
    assert slow_future.result().one()[0] == 60_000
    for i, f in enumerate(quick_futures):
        assert f.result().one().v == value
    time.sleep(0.05)  # callbacks run on the driver's event thread
    assert len(done) == 21, done
    late = [n for n, t in done.items() if n != "slow" and t > done["slow"]]
    # The scan takes long enough to tell the orders apart (tens of ms for 60,000 rows).
    assert alone > 0.01, alone
    assert not late, f"point reads answered after the {alone * 1000:.0f} ms scan: {late}"
