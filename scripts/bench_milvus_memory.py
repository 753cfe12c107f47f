"""Memory of Milvus standalone under soko's settings and under Milvus's defaults.

Run through scripts/bench-milvus-memory (it finds the interpreter with pymilvus).
"""
import argparse
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
from pymilvus import DataType, MilvusClient

# pymilvus logs every refused connection while the server starts: only real errors here.
logging.disable(logging.WARNING)

DIM = 1664
BATCH = 200
# soko's tuning of Milvus (src/supervisor/milvus.rs): dropped for the "defaults" variant.
TUNING = ("DATACOORD_SEGMENT_MAXIDLETIME=", "COMMON_GCENABLED=", "GOGC=")


def compose_milvus(path):
    """The milvus service's image, environment and container data path in compose.yaml."""
    text = open(path, encoding="utf-8").read()
    block = text.split("\n  milvus:\n", 1)[1].split("\n  mysql:\n", 1)[0]
    env = re.findall(r"(?m)^    - ([A-Z_]+=.*)$", block)
    image = re.search(r"(?m)^    image: (\S+)$", block).group(1)
    volume = re.search(r"(?m)^    - \S+:(/\S+)$", block.split("volumes:", 1)[1]).group(1)
    return image, env, volume


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def podman(*args, check=True):
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=check)


class Container:
    def __init__(self, name, image, env, volume, data, memory_mb):
        self.name, self.image, self.env = name, image, env
        self.volume, self.data, self.memory_mb = volume, data, memory_mb
        self.port = free_port()

    def start(self, timeout=240):
        podman("rm", "-f", self.name, check=False)
        args = ["run", "-d", "--name", self.name, "--memory", f"{self.memory_mb}m",
                "--memory-swap", f"{self.memory_mb}m", "-p", f"127.0.0.1:{self.port}:19530",
                "-v", f"{self.data}:{self.volume}", "-w", "/milvus"]
        for e in self.env:
            args += ["-e", e]
        podman(*args, self.image, "/milvus/bin/milvus", "run", "standalone")
        started = time.time()
        while time.time() - started < timeout:
            if self.oom_killed() or not self.running():
                return None
            try:
                client = MilvusClient(uri=f"http://127.0.0.1:{self.port}", timeout=5)
                client.list_collections()
                return client
            except Exception:
                time.sleep(2)
        return None

    def running(self):
        return podman("inspect", "-f", "{{.State.Running}}", self.name, check=False).stdout.strip() == "true"

    def oom_killed(self):
        return podman("inspect", "-f", "{{.State.OOMKilled}}", self.name, check=False).stdout.strip() == "true"

    def memory(self):
        """(engine figure MiB, VmRSS MiB of the container's processes), None when not running."""
        if not self.running():
            return None
        stats = json.loads(podman("stats", "--no-stream", "--format", "json", self.name).stdout)[0]
        pid = podman("inspect", "-f", "{{.State.Pid}}", self.name).stdout.strip()
        rss_kib = 0
        pids = subprocess.run(["pgrep", "-P", pid], capture_output=True, text=True).stdout.split()
        for p in [pid, *pids]:
            try:
                with open(f"/proc/{p}/status", encoding="utf-8") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            rss_kib += int(line.split()[1])
            except OSError:
                pass
        usage = stats.get("mem_usage", "")
        return {"engine": usage.split(" / ")[0], "rss_mib": rss_kib // 1024}

    def stop(self):
        podman("stop", "-t", "5", self.name, check=False)

    def remove(self):
        podman("rm", "-f", self.name, check=False)


def run_variant(label, image, env, volume, args):
    data = os.path.join(args.work, label)
    shutil.rmtree(data, ignore_errors=True)
    os.makedirs(data)
    c = Container(f"soko-bench-milvus-{label}", image, env, volume, data, args.memory_mb)
    result = {"variant": label, "env": env, "products": args.products, "memory_mb": args.memory_mb,
              "write": "insert" if args.insert else "upsert"}
    try:
        client = c.start()
        if client is None:
            result["error"] = "did not start"
            return result
        schema = client.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
        for f in ("seller_id", "category_id", "price_minor"):
            schema.add_field(f, DataType.INT64)
        schema.add_field("name", DataType.VARCHAR, max_length=200)
        schema.add_field("city", DataType.VARCHAR, max_length=80)
        index = client.prepare_index_params()
        index.add_index("vector", index_type="IVF_FLAT", metric_type="IP", params={"nlist": 1024})
        client.create_collection("products", schema=schema, index_params=index)
        client.load_collection("products")
        rng = np.random.default_rng(1)
        started = time.time()
        for first in range(0, args.products, BATCH):
            n = min(BATCH, args.products - first)
            v = rng.standard_normal((n, DIM)).astype(np.float32)
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            write = client.insert if args.insert else client.upsert
            write("products", [
                {"id": first + i, "vector": v[i].tolist(), "seller_id": 1 + i % 50,
                 "category_id": 1 + i % 12, "price_minor": 100 * (i + 1),
                 "name": f"Product {first + i} kitenge dress", "city": "Nairobi"}
                for i in range(n)])
        result["ingest_s"] = round(time.time() - started, 1)
        # Wait for Milvus to seal and index the catalogue itself (soko flushes only milvus-lite).
        waited = time.time()
        indexed = False
        while time.time() - waited < args.seal_wait:
            if not c.running():
                break
            d = client.describe_index("products", "vector")
            if d.get("indexed_rows") == args.products and d.get("pending_index_rows", 0) == 0:
                indexed = True
                break
            time.sleep(3)
        result["sealed_and_indexed"] = indexed
        result["seal_wait_s"] = round(time.time() - waited)
        time.sleep(10)
        result["after_ingest"] = c.memory()
        result["oom_killed_in_ingest"] = c.oom_killed()
        c.stop()
        client = c.start()
        result["after_restart"] = {}
        if client is not None:
            client.load_collection("products")
            q = rng.standard_normal(DIM).astype(np.float32)
            q /= np.linalg.norm(q)
            for _ in range(20):
                client.search("products", [q.tolist()], limit=10, search_params={"params": {"nprobe": 32}})
            t0 = time.time()
            for at in (10, 30, 60):
                time.sleep(max(0, t0 + at - time.time()))
                result["after_restart"][f"{at}s"] = c.memory()
        result["oom_killed_after_restart"] = c.oom_killed()
        return result
    finally:
        c.remove()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--compose", required=True)
    p.add_argument("--products", type=int, default=10000)
    p.add_argument("--memory-mb", type=int, default=1536)
    p.add_argument("--only", default="")
    p.add_argument("--work", required=True)
    p.add_argument("--json", required=True)
    p.add_argument("--seal-wait", type=int, default=180)
    p.add_argument("--insert", action="store_true", help="write with insert (soko's vector sync upserts)")
    args = p.parse_args()
    image, env, volume = compose_milvus(args.compose)
    variants = {"soko": env, "defaults": [e for e in env if not e.startswith(TUNING)]}
    results = []
    for label, e in variants.items():
        if args.only and args.only != label:
            continue
        print(f"==> {label}: {args.products} products, {args.memory_mb} MiB limit", file=sys.stderr, flush=True)
        results.append(run_variant(label, image, e, volume, args))
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump({"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "image": image,
                   "results": results}, f, indent=2)

    def fmt(m):
        return "-" if not m else f"{m['engine']} / {m['rss_mib']} MiB"

    print(f"{'variant':<10} {'sealed':<7} {'after ingest (engine / RSS)':<30} "
          f"{'restart +10 s':<24} {'restart +60 s':<24} OOM-killed")
    for r in results:
        ar = r.get("after_restart", {})
        oom = r.get("oom_killed_in_ingest") or r.get("oom_killed_after_restart")
        print(f"{r['variant']:<10} {str(r.get('sealed_and_indexed', '-')):<7} "
              f"{fmt(r.get('after_ingest')):<30} {fmt(ar.get('10s')):<24} {fmt(ar.get('60s')):<24} "
              f"{'yes' if oom else 'no'}{'  ' + r['error'] if 'error' in r else ''}")
    print(f"JSON: {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
