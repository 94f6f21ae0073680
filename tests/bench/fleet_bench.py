#!/usr/bin/env python3
"""Helper of tests/bench/fleet.sh (standard library only): writes the benchmark configs,
measures config propagation on a fleet, and summarises wrk and RSS results.

  fleet_bench.py config N --listen ADDR [--version V] [--threads T] [--mix default|plain]
                                                                     TOML on stdout
  fleet_bench.py probe-item VERSION                                  the probe location, JSON
  fleet_bench.py wait-fleet --listen ADDR --admins P1,P2,P3 --version V [--timeout S]
  fleet_bench.py propagation --listen ADDR --admins P1,P2,P3 --etcd HOST:PORT --prefix /louailink
                 --api http://HOST:PORT --token T --writes N --out FILE.json
  fleet_bench.py swapper --dir D --listen ADDR --duration S [--swap]   renames configs, times swaps
  fleet_bench.py wrk-parse FILE                                       "rps p50_ms p99_ms errors non2xx"
  fleet_bench.py report --propagation F.json --swaps F.tsv --memory F.tsv   markdown tables

Every generated config has a `probe` location (`=/probe`, answered by the `hello` mock plugin)
whose response headers carry `X-Version: <version>` and `X-Node: ${NODE_NAME}` (the node's
environment), so a client can tell which node answered and which config it served.
"""

import argparse
import base64
import http.client
import json
import random
import re
import statistics
import sys
import threading
import time

PROBE = "probe"


def probe_item(version):
    return {
        "path": "=/probe",
        "plugins": ["hello"],
        "response_headers": ["X-Node: ${NODE_NAME}", f"X-Version: {version}"],
    }


def location(i, mix="default"):
    """Location i of a generated config: a mix like real fleets have (prefixes mostly, exact
    paths, exact / wildcard hosts, some regexes), half answered by a plugin, half proxied.
    Mix `default`: 1 in 10 has a regex path and 1 in 10 a regex rewrite; `plain`: no regex
    (those become prefixes without rewrite)."""
    kind = i % 10
    if mix == "plain" and kind >= 8:
        kind = 0
    loc = {}
    if kind <= 4:
        loc["path"] = f"/svc{i}/"
    elif kind == 5:
        loc["path"] = f"=/exact/{i}"
    elif kind == 6:
        loc["host"] = f"h{i}.example.com"
        loc["path"] = "/"
    elif kind == 7:
        loc["host"] = f"*.w{i}.example.com"
        loc["path"] = f"/api{i}/"
    elif kind == 8:
        loc["path"] = f"~^/re{i}/[0-9]+$"
    else:
        loc["host"] = f"api{i}.example.net"
        loc["path"] = f"/v{i % 7}/"
        loc["rewrite"] = f"^/v{i % 7}/(.*)$ /$1"
    if i % 2:
        loc["plugins"] = ["hello"]
    else:
        loc["upstream"] = "backend"
        loc["proxy_set_headers"] = [f"X-Route: r{i}"]
    return loc


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(type(v))


def cmd_config(a):
    out = [
        "[basic]",
        'name = "fleet-bench"',
        f"threads = {a.threads}",
        'grace_period = "1s"',
        'graceful_shutdown_timeout = "1s"',
        "",
        "[servers.main]",
        f"addr = {toml_value(a.listen)}",
        f"locations = {toml_value([PROBE] + [f'l{i:05d}' for i in range(a.n)])}",
        "",
        "[plugins.hello]",
        'category = "mock"',
        "status = 200",
        'data = "hello"',
        "",
        "[upstreams.backend]",
        # Never reached by the benchmark (its requests go to plugin locations).
        'addrs = ["127.0.0.1:9"]',
        "",
        f"[locations.{PROBE}]",
    ]
    for k, v in probe_item(a.version).items():
        out.append(f"{k} = {toml_value(v)}")
    for i in range(a.n):
        out.append("")
        out.append(f"[locations.l{i:05d}]")
        for k, v in location(i, a.mix).items():
            out.append(f"{k} = {toml_value(v)}")
    sys.stdout.write("\n".join(out) + "\n")


def cmd_probe_item(a):
    print(json.dumps(probe_item(a.version)))


# ------------------------------------------------------------------ probing the nodes


class NodeConn:
    """One keep-alive connection to the shared listener that landed on one node."""

    def __init__(self, name, conn):
        self.name = name
        self.conn = conn

    def version(self):
        self.conn.request("GET", "/probe")
        r = self.conn.getresponse()
        r.read()
        if r.status != 200:
            raise RuntimeError(f"{self.name}: /probe answered {r.status}")
        return r.getheader("X-Version")


def split_addr(addr):
    host, port = addr.rsplit(":", 1)
    return host, int(port)


def connect_each_node(listen, want, timeout=30.0):
    """Opens connections to the shared (SO_REUSEPORT) listener until one has landed on each
    of the `want` nodes (told apart by X-Node)."""
    host, port = split_addr(listen)
    found = {}
    deadline = time.monotonic() + timeout
    tries = 0
    while len(found) < want:
        if time.monotonic() > deadline:
            raise SystemExit(f"only reached nodes {sorted(found)} after {tries} connections")
        tries += 1
        conn = http.client.HTTPConnection(host, port, timeout=5)
        try:
            conn.request("GET", "/probe")
            r = conn.getresponse()
            r.read()
            node = r.getheader("X-Node") or ""
        except OSError:
            conn.close()
            time.sleep(0.05)
            continue
        if node and node not in found:
            found[node] = NodeConn(node, conn)
        else:
            conn.close()
    return [found[k] for k in sorted(found)]


def admin_status(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/_louailink/status")
        r = conn.getresponse()
        return json.loads(r.read())
    finally:
        conn.close()


def cmd_wait_fleet(a):
    admins = [int(p) for p in a.admins.split(",")]
    deadline = time.monotonic() + a.timeout
    while True:
        try:
            nodes = connect_each_node(a.listen, len(admins), timeout=2)
            versions = {n.name: n.version() for n in nodes}
            if all(v == str(a.version) for v in versions.values()):
                print(f"all {len(nodes)} nodes serve version {a.version}: {sorted(versions)}")
                return
        except (OSError, RuntimeError, SystemExit, http.client.HTTPException):
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"the fleet did not serve version {a.version} within {a.timeout}s")
        time.sleep(0.2)


class Poller(threading.Thread):
    """Polls one node (probe request on its own keep-alive connection, and its admin status)
    every ~1 ms while a write is pending, and records when it first sees the write."""

    def __init__(self, node, admin_port, interval):
        super().__init__(daemon=True)
        self.node = node
        self.admin = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=5)
        self.interval = interval
        self.go = threading.Event()
        self.done = threading.Event()
        self.stop = False
        self.target = None  # (version, revision, t0)
        self.seen = None  # seconds after t0 when /probe showed the version
        self.status_seen = None  # seconds after t0 when status showed the revision
        self.polls = 0
        self.error = None

    def status_revision(self):
        self.admin.request("GET", "/_louailink/status")
        r = self.admin.getresponse()
        return json.loads(r.read()).get("applied_revision", 0)

    def run(self):
        while True:
            self.go.wait()
            self.go.clear()
            if self.stop:
                return
            version, revision, t0, deadline = self.target
            try:
                while self.seen is None or (revision and self.status_seen is None):
                    now = time.perf_counter()
                    if now > deadline:
                        break
                    if self.seen is None:
                        self.polls += 1
                        if self.node.version() == version:
                            self.seen = time.perf_counter() - t0
                    if revision and self.status_seen is None:
                        if self.status_revision() >= revision:
                            self.status_seen = time.perf_counter() - t0
                    time.sleep(self.interval)
            except (OSError, RuntimeError, http.client.HTTPException, ValueError) as e:
                self.error = f"{self.node.name}: {e!r}"
            self.done.set()


class WriteFailed(Exception):
    """A write answered with an error (counted, not measured)."""


def etcd_put(conn, key, value):
    body = json.dumps(
        {
            "key": base64.b64encode(key.encode()).decode(),
            "value": base64.b64encode(value.encode()).decode(),
        }
    )
    conn.request("POST", "/v3/kv/put", body, {"Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    if r.status != 200:
        raise WriteFailed(f"etcd put: {r.status} {data[:300]!r}")
    return int(json.loads(data)["header"]["revision"])


def api_put(conn, token, name, item):
    conn.request(
        "PUT",
        f"/api/v1/locations/{name}",
        json.dumps(item),
        {"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    r = conn.getresponse()
    data = r.read()
    if r.status not in (200, 201):
        raise WriteFailed(f"API PUT: {r.status} {data[:300]!r}")
    try:
        rev = json.loads(data).get("revision")
        return int(rev) if rev is not None else 0
    except ValueError:
        return 0


def pct(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))
    return s[k]


def summary(values):
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50": pct(values, 50),
        "p90": pct(values, 90),
        "p99": pct(values, 99),
        "max": max(values),
        "mean": statistics.fmean(values),
    }


def cmd_propagation(a):
    admins = [int(p) for p in a.admins.split(",")]
    nodes = connect_each_node(a.listen, len(admins))
    # Match the admin ports to the nodes by node id (status `id` = --node-id = NODE_NAME).
    by_id = {admin_status(p)["id"]: p for p in admins}
    pollers = []
    for n in nodes:
        if n.name not in by_id:
            raise SystemExit(f"no admin port for node {n.name} (ids: {sorted(by_id)})")
        pollers.append(Poller(n, by_id[n.name], a.interval / 1000))
    for p in pollers:
        p.start()
    eh, ep = split_addr(a.etcd)
    etcd = http.client.HTTPConnection(eh, ep, timeout=10)
    ah, ap = split_addr(a.api.removeprefix("http://"))
    api = http.client.HTTPConnection(ah, ap, timeout=10)
    key = f"{a.prefix.rstrip('/')}/locations/{PROBE}"
    base = int(time.time()) % 100000 * 1000
    results = {"etcd": [], "api": []}
    timeouts = {"etcd": 0, "api": 0}
    failed = {"etcd": 0, "api": 0}
    errors = []
    total = 2 * a.writes + a.warmup
    for i in range(total):
        via = "etcd" if i % 2 == 0 else "api"
        version = str(base + i + 1)
        item = probe_item(version)
        for p in pollers:
            p.seen = p.status_seen = None
            p.done.clear()
        t0 = time.perf_counter()
        try:
            if via == "etcd":
                revision = etcd_put(etcd, key, json.dumps(item))
            else:
                revision = api_put(api, a.token, PROBE, item)
        except WriteFailed as e:
            failed[via] += 1
            errors.append(str(e))
            print(f"write {i} failed: {e}", file=sys.stderr)
            time.sleep(0.5)
            continue
        ack = time.perf_counter() - t0
        deadline = t0 + a.timeout
        for p in pollers:
            p.target = (version, revision, t0, deadline)
            p.go.set()
        for p in pollers:
            p.done.wait()
            if p.error:
                errors.append(p.error)
                p.error = None
        if i < a.warmup:
            continue
        seen = [p.seen for p in pollers]
        if any(s is None for s in seen):
            timeouts[via] += 1
            continue
        status = [p.status_seen for p in pollers]
        results[via].append(
            {
                "ack": ack,
                "revision": revision,
                "nodes": {p.node.name: p.seen for p in pollers},
                "all": max(seen),
                "first": min(seen),
                "status_all": max(status) if all(s is not None for s in status) else None,
            }
        )
        # A pause between writes (so each is measured on its own), 20-80 ms.
        time.sleep(random.uniform(0.02, 0.08))
    for p in pollers:
        p.stop = True
        p.go.set()
    out = {"writes_per_path": a.writes, "poll_interval_ms": a.interval, "nodes": [p.node.name for p in pollers]}
    for via in ("etcd", "api"):
        rs = results[via]
        out[via] = {
            "all_nodes_ms": summary([r["all"] * 1000 for r in rs]),
            "first_node_ms": summary([r["first"] * 1000 for r in rs]),
            "per_node_ms": summary([v * 1000 for r in rs for v in r["nodes"].values()]),
            "status_all_nodes_ms": summary(
                [r["status_all"] * 1000 for r in rs if r["status_all"] is not None]
            ),
            "write_ack_ms": summary([r["ack"] * 1000 for r in rs]),
            "after_ack_all_nodes_ms": summary([(r["all"] - r["ack"]) * 1000 for r in rs]),
            "timeouts": timeouts[via],
            "failed_writes": failed[via],
            "raw": rs,
        }
    out["errors"] = errors[:20]
    out["polls"] = {p.node.name: p.polls for p in pollers}
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)
    for via, what in (("etcd", "etcd put"), ("api", "REST PUT")):
        s = out[via]["all_nodes_ms"]
        if s["n"]:
            print(
                f"{what} -> applied on all {len(pollers)} nodes: n={s['n']} p50={s['p50']:.1f} ms "
                f"p99={s['p99']:.1f} ms max={s['max']:.1f} ms (timeouts {timeouts[via]})"
            )
    if errors:
        print(f"probe errors: {errors[:5]}")


# ------------------------------------------------------------------ swaps


def cmd_swapper(a):
    """For `duration` seconds: every `interval` s (swap mode) renames the next prepared config
    (src-1.toml, src-2.toml, alternating) over conf.toml and times until GET /probe answers with
    its version; in both modes polls /probe every `poll_ms` ms so both kinds of round carry the
    same probe load. Prints one JSON line: swaps done, seconds from rename to served each."""
    import os
    import shutil

    host, port = split_addr(a.listen)
    conn = http.client.HTTPConnection(host, port, timeout=5)

    def version():
        conn.request("GET", "/probe")
        r = conn.getresponse()
        r.read()
        return r.getheader("X-Version")

    current = version()
    latencies, pending, nxt = [], None, "1" if current != "1" else "2"
    start = time.monotonic()
    next_swap = start + a.interval
    while time.monotonic() - start < a.duration:
        now = time.monotonic()
        if a.swap and pending is None and now >= next_swap:
            shutil.copyfile(os.path.join(a.dir, f"src-{nxt}.toml"), os.path.join(a.dir, "next.tmp"))
            t0 = time.perf_counter()
            os.replace(os.path.join(a.dir, "next.tmp"), os.path.join(a.dir, "conf.toml"))
            pending = (nxt, t0)
            nxt = "2" if nxt == "1" else "1"
            next_swap += a.interval
        try:
            v = version()
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=5)
            continue
        if pending and v == pending[0]:
            latencies.append(time.perf_counter() - pending[1])
            pending = None
        time.sleep(a.poll_ms / 1000)
    print(json.dumps({"swaps": len(latencies) + (1 if pending else 0), "served_s": latencies}))


# ------------------------------------------------------------------ wrk and reports


def ms(value, unit):
    f = float(value)
    return f * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def parse_wrk(text):
    lat = dict(re.findall(r"^\s+(50|75|90|99)%\s+([0-9.]+\w+)", text, re.M))

    def dur(s):
        m = re.match(r"([0-9.]+)(us|ms|s|m)$", s)
        return ms(m.group(1), m.group(2))

    rps = re.search(r"Requests/sec:\s+([0-9.]+)", text)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "p50": dur(lat["50"]) if "50" in lat else float("nan"),
        "p99": dur(lat["99"]) if "99" in lat else float("nan"),
        "errors": sum(int(x) for x in errors.groups()) if errors else 0,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
    }


def cmd_wrk_parse(a):
    with open(a.file) as f:
        r = parse_wrk(f.read())
    print(f"{r['rps']:.0f} {r['p50']:.3f} {r['p99']:.3f} {r['errors']} {r['non2xx']}")


def read_tsv(path):
    with open(path) as f:
        lines = [l.rstrip("\n").split("\t") for l in f if l.strip()]
    head, rows = lines[0], lines[1:]
    return [dict(zip(head, r)) for r in rows]


def cmd_report(a):
    if a.propagation:
        with open(a.propagation) as f:
            p = json.load(f)
        print(f"Propagation, {len(p['nodes'])} nodes, polled every {p['poll_interval_ms']} ms per node "
              f"(ms from just before the write is sent):\n")
        print("| write | n | applied on all nodes p50 | p90 | p99 | max | first node p50 | node status shows it, all nodes p50 / p99 | write acknowledged p50 / p99 | applied on all after the acknowledgement p50 / p99 | not applied in 5 s / write failed |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for via, what in (("etcd", "etcd put (gateway `/v3/kv/put`)"), ("api", "REST `PUT /api/v1/locations/probe`")):
            s, f1, st, ack = (p[via][k] for k in ("all_nodes_ms", "first_node_ms", "status_all_nodes_ms", "write_ack_ms"))
            if not s["n"]:
                print(f"| {what} | 0 | – | – | – | – | – | – | – | – | {p[via]['timeouts']} / {p[via].get('failed_writes', 0)} |")
                continue
            stxt = f"{st['p50']:.1f} / {st['p99']:.1f}" if st["n"] else "–"
            after = [(r["all"] - r["ack"]) * 1000 for r in p[via]["raw"]]
            print(f"| {what} | {s['n']} | **{s['p50']:.1f}** | {s['p90']:.1f} | **{s['p99']:.1f}** | {s['max']:.1f} | "
                  f"{f1['p50']:.1f} | {stxt} | {ack['p50']:.1f} / {ack['p99']:.1f} | {pct(after, 50):.1f} / {pct(after, 99):.1f} | "
                  f"{p[via]['timeouts']} / {p[via].get('failed_writes', 0)} |")
        print()
    if a.swaps:
        rows = read_tsv(a.swaps)
        by = {"none": [], "swap": []}
        for r in rows:
            by[r["mode"]].append(r)
        print("Latency under load (one node, wrk), rounds alternating; medians over rounds:\n")
        print("| rounds | mode | req/s | p50 ms | p99 ms | swaps applied per round | rename → served, median / max ms | failed requests (socket errors + non-2xx) |")
        print("|---|---|---|---|---|---|---|---|")
        med = {}
        for mode in ("none", "swap"):
            rs = by[mode]
            if not rs:
                continue
            m = {k: statistics.median(float(r[k]) for r in rs) for k in ("rps", "p50", "p99", "swaps")}
            fails = sum(int(r["errors"]) + int(r["non2xx"]) for r in rs)
            med[mode] = m
            label = "no swaps" if mode == "none" else "1 swap/s"
            served = [float(x) for r in rs for x in r.get("served_ms", "").split(",") if x]
            stxt = f"{statistics.median(served):.0f} / {max(served):.0f}" if served else "–"
            print(f"| {len(rs)} | {label} | {m['rps']:.0f} | {m['p50']:.3f} | {m['p99']:.3f} | {m['swaps']:.0f} | {stxt} | {fails} |")
        if "none" in med and "swap" in med:
            print(f"\np99 with swaps / without: **{med['swap']['p99'] / med['none']['p99']:.2f}×** (target ≤ 1.2×); "
                  f"req/s ratio {med['swap']['rps'] / med['none']['rps']:.2f}")
            per = ", ".join(f"{float(r['p99']):.2f}" for r in by["none"])
            per2 = ", ".join(f"{float(r['p99']):.2f}" for r in by["swap"])
            print(f"\np99 per round (ms): no swaps {per}; swaps {per2}")
            if rows and "rss_kib" in rows[0]:
                print("\nRSS after each round (MiB): " + ", ".join(f"{int(r['rss_kib']) / 1024:.0f}" for r in rows))
        print()
    if a.memory:
        rows = read_tsv(a.memory)
        sizes = sorted({int(r["locations"]) for r in rows})
        med = {n: statistics.median(int(r["rss_kib"]) for r in rows if int(r["locations"]) == n) for n in sizes}
        print("RSS of one node (file mode, 1 worker thread) after a few requests, median over repetitions:\n")
        print("| locations | RSS MiB (median) | runs (KiB) |")
        print("|---|---|---|")
        for n in sizes:
            runs = ", ".join(r["rss_kib"] for r in rows if int(r["locations"]) == n)
            print(f"| {n:,} | {med[n] / 1024:.1f} | {runs} |")
        if 0 in med:
            for n in sizes:
                if n:
                    print(f"\nRSS growth per 1,000 locations, 0 → {n:,}: **{(med[n] - med[0]) / 1024 / (n / 1000):.2f} MiB** (target ≤ 5 MiB)")
        print()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("config")
    c.add_argument("n", type=int)
    c.add_argument("--listen", required=True)
    c.add_argument("--version", default="0")
    c.add_argument("--threads", type=int, default=1)
    c.add_argument("--mix", choices=["default", "plain"], default="default")
    c.set_defaults(func=cmd_config)
    c = sub.add_parser("probe-item")
    c.add_argument("version")
    c.set_defaults(func=cmd_probe_item)
    c = sub.add_parser("wait-fleet")
    c.add_argument("--listen", required=True)
    c.add_argument("--admins", required=True)
    c.add_argument("--version", required=True)
    c.add_argument("--timeout", type=float, default=60)
    c.set_defaults(func=cmd_wait_fleet)
    c = sub.add_parser("propagation")
    c.add_argument("--listen", required=True)
    c.add_argument("--admins", required=True)
    c.add_argument("--etcd", required=True)
    c.add_argument("--prefix", default="/louailink")
    c.add_argument("--api", required=True)
    c.add_argument("--token", required=True)
    c.add_argument("--writes", type=int, default=60, help="writes per path (etcd, API)")
    c.add_argument("--warmup", type=int, default=4)
    c.add_argument("--interval", type=float, default=1.0, help="poll interval per node, ms")
    c.add_argument("--timeout", type=float, default=5.0, help="per write, seconds")
    c.add_argument("--out", required=True)
    c.set_defaults(func=cmd_propagation)
    c = sub.add_parser("swapper")
    c.add_argument("--dir", required=True)
    c.add_argument("--listen", required=True)
    c.add_argument("--duration", type=float, required=True)
    c.add_argument("--interval", type=float, default=1.0)
    c.add_argument("--poll-ms", type=float, default=5.0)
    c.add_argument("--swap", action="store_true")
    c.set_defaults(func=cmd_swapper)
    c = sub.add_parser("wrk-parse")
    c.add_argument("file")
    c.set_defaults(func=cmd_wrk_parse)
    c = sub.add_parser("report")
    c.add_argument("--propagation")
    c.add_argument("--swaps")
    c.add_argument("--memory")
    c.set_defaults(func=cmd_report)
    a = ap.parse_args()
    a.func(a)


if __name__ == "__main__":
    main()
