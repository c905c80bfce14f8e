"""`meshreg up` beside `kubectl apply --server-side` of the same objects, on a real API server, directly and through
a proxy that delays every packet (a cluster in another region): median times, their ratio, and how many requests
and connections each sends. Both runs are idempotent (everything is applied already), as on a re-run of a deploy.

    LAB_KUBE=/path/to/lab python benchmarks/up.py [--runs 9] [--delay-ms 25] [-c meshreg.yaml]

The API server is the lab in ../shared/lab-kube (started with LAB_FAKE_KUBELET=1 LAB_FAKE_INJECTOR=1, Istio's CRDs
and lab-pv.yaml applied, a stand-in `istiod` Deployment in istio-system and the audit provider in its mesh config,
so that `up`'s checks pass as on a cluster with Istio); --kubeconfig points elsewhere (an API server of one's own:
then give the stand-ins the status their controllers would). meshreg runs `up --no-wait`, which includes its checks,
the read of what exists and the server-side dry run of every object; kubectl runs `apply --server-side
--field-manager meshreg -f` the same rendered objects; both with their discovery caches warm (the same files:
meshreg keeps its discovery answers where kubectl does), as a user's would be. Requests are counted by each client's
own request log (kubectl -v=6, urllib3's debug log for meshreg) and by the server's apiserver_request_total (which
leaves out discovery and /version); connections by the proxy. Targets (issue 27): meshreg at most 1.2x kubectl on
loopback, at most 0.75x at 25 ms each way (issue 17), and at most 30 requests.

meshreg runs with its bytecode cached, as `pip install` leaves it: in a cache of the benchmark's own
(PYTHONPYCACHEPREFIX, written by the first runs), so an editable install under PYTHONDONTWRITEBYTECODE=1 does not
compile meshreg's modules on every run, and nothing is written into the source tree.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import yaml

TARGETS = {"loopback": 1.2, "delayed": 0.75}
MAX_REQUESTS = 30  # meshreg, with the dry run of every object
BACKGROUND = {"nodes", "leases", "pods"}  # the fake kubelet's heartbeats and pod updates, not either tool's
# meshreg with urllib3's debug log on stderr: one line per HTTP request it sends
LOGGED = ("import logging, sys; logging.basicConfig(stream=sys.stderr, level=logging.DEBUG, format='%(message)s'); "
          "from meshreg.cli import main; sys.argv[0] = 'meshreg'; main()")
MESHREG = [sys.executable, "-m", "meshreg"]
SENT = {"kubectl": re.compile(r'round_trippers\.go:\d+\] (?:"Response" verb=")?(GET|PATCH|POST|PUT|DELETE)[" ]'),
        "meshreg": re.compile(r'^https?://\S+ "(GET|PATCH|POST|PUT|DELETE) \S+ HTTP/1\.1"', re.M)}


class DelayProxy:
    """A TCP proxy on 127.0.0.1 that delays every chunk by `delay` seconds in each direction, keeping order, and
    costs a new connection one round trip before its first byte (the TCP handshake of a real network)."""

    def __init__(self, target: tuple[str, int], delay: float):
        self.target, self.delay = target, delay
        self.connections = 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.port = 0
        threading.Thread(target=self._run, daemon=True).start()
        self.ready.wait()

    def _run(self):
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    async def _handle(self, client_reader, client_writer):
        self.connections += 1
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        await asyncio.gather(self._pipe(client_reader, upstream_writer, handshake=True),
                             self._pipe(upstream_reader, client_writer), return_exceptions=True)

    async def _pipe(self, reader, writer, *, handshake=False):
        queue: asyncio.Queue = asyncio.Queue()

        async def send():
            while True:
                due, data = await queue.get()
                await asyncio.sleep(max(0.0, due - self.loop.time()))
                if data is None:
                    writer.close()
                    return
                writer.write(data)
                await writer.drain()

        sender = asyncio.create_task(send())
        extra = 2 * self.delay if handshake else 0.0
        try:
            while data := await reader.read(65536):
                queue.put_nowait((self.loop.time() + self.delay + extra, data))
                extra = 0.0
        finally:
            queue.put_nowait((self.loop.time() + self.delay, None))
            await sender


def requests_total(kubeconfig: str) -> dict:
    """apiserver_request_total by verb, for clients outside the control plane and the fake kubelet."""
    text = subprocess.run(["kubectl", "--kubeconfig", kubeconfig, "get", "--raw", "/metrics"], check=True,
                          capture_output=True, text=True).stdout
    out: dict = {}
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line[:line.rindex("}")]))
        if labels.get("system_client") or labels.get("resource") in BACKGROUND:
            continue
        out[labels["verb"]] = out.get(labels["verb"], 0) + float(line.rsplit(" ", 1)[1])
    return out


def counted(name: str, command: list[str], kubeconfig: str) -> tuple[dict, int]:
    """(requests by method from the client's own log, the rise of apiserver_request_total) for one run."""
    logged = {"kubectl": [*command, "-v=6"], "meshreg": [sys.executable, "-c", LOGGED, *command[3:]]}[name]
    before = requests_total(kubeconfig)
    log = run(logged)[1]
    server = int(sum(requests_total(kubeconfig).values()) - sum(before.values()))
    sent: dict = {}
    for method in SENT[name].findall(log):
        sent[method] = sent.get(method, 0) + 1
    return dict(sorted(sent.items())), server


def run(command: list[str]) -> tuple[float, str]:
    """Wall time of a command that must succeed, and its stderr."""
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{done.stderr.strip()[-2000:]}")
    return elapsed, done.stderr


def current_cluster(doc: dict) -> dict:
    """The `cluster` entry a kubeconfig's current context uses (the same dict, for changing it in place)."""
    context = next(c for c in doc["contexts"] if c["name"] == doc["current-context"])["context"]
    return next(c for c in doc["clusters"] if c["name"] == context["cluster"])["cluster"]


def kubeconfig_via(kubeconfig: str, port: int, directory: str) -> str:
    """The same kubeconfig with its current cluster's server pointing at the proxy."""
    doc = yaml.safe_load(Path(kubeconfig).read_text())
    current_cluster(doc)["server"] = f"https://127.0.0.1:{port}"
    path = os.path.join(directory, "kubeconfig-delayed")
    Path(path).write_text(yaml.safe_dump(doc))
    return path


def server_of(kubeconfig: str) -> tuple[str, int]:
    url = urlsplit(current_cluster(yaml.safe_load(Path(kubeconfig).read_text()))["server"])
    return url.hostname, url.port or 443


def commands_for(kubeconfig: str, *, rendered: str, config: list[str]) -> dict:
    """The two deploys compared: kubectl's server-side apply of the rendered objects, and `meshreg up`."""
    return {"kubectl": ["kubectl", "--kubeconfig", kubeconfig, "apply", "--server-side", "--field-manager", "meshreg",
                        "-f", rendered],
            "meshreg": [*MESHREG, "up", "-q", "--no-wait", *config, "--kubeconfig", kubeconfig]}


def measure(commands: dict, runs: int) -> dict:
    """Median wall time of each command, run alternately (paired runs) after one warm-up each."""
    times: dict = {name: [] for name in commands}
    for command in commands.values():
        run(command)
    for i in range(runs):
        for name in (list(commands) if i % 2 == 0 else list(reversed(commands))):
            times[name].append(run(commands[name])[0])
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    lab = os.environ.get("LAB_KUBE")
    parser.add_argument("--kubeconfig", default=os.path.join(lab, "kubeconfig") if lab else None)
    parser.add_argument("-c", "--config", default=None, help="meshreg config (default: the built-in default)")
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--delay-ms", type=float, default=25.0, help="delay each way through the proxy")
    args = parser.parse_args()
    if not args.kubeconfig:
        sys.exit("set LAB_KUBE to the API-server lab (../shared/lab-kube/README.md) or pass --kubeconfig")
    config = ["-c", args.config] if args.config else []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        os.environ["PYTHONPYCACHEPREFIX"] = os.path.join(tmp, "bytecode")
        rendered = os.path.join(tmp, "objects.yaml")
        Path(rendered).write_text(subprocess.run([*MESHREG, "render", *config], check=True, capture_output=True,
                                                 text=True).stdout)
        first = subprocess.run([*MESHREG, "up", "-q", "--no-wait", *config, "--kubeconfig", args.kubeconfig],
                               capture_output=True, text=True)  # everything in place, or nothing to measure
        if first.returncode:
            sys.exit(f"meshreg up failed, nothing measured:\n{first.stdout}{first.stderr}")
        proxy = DelayProxy(server_of(args.kubeconfig), args.delay_ms / 1000)
        networks = {"loopback": args.kubeconfig, "delayed": kubeconfig_via(args.kubeconfig, proxy.port, tmp)}
        rows = []
        for network, kubeconfig in networks.items():
            commands = commands_for(kubeconfig, rendered=rendered, config=config)
            medians = measure(commands, args.runs)
            rows.append((network, medians["kubectl"], medians["meshreg"]))
            if network == "delayed":
                connections = {}
                for name, command in commands.items():
                    before = proxy.connections
                    run(command)
                    connections[name] = proxy.connections - before
        requests = {name: counted(name, command, args.kubeconfig)
                    for name, command in commands_for(args.kubeconfig, rendered=rendered, config=config).items()}
    report(rows, requests, connections, runs=args.runs, delay=args.delay_ms)


def report(rows, requests, connections, *, runs, delay) -> None:
    kubectl = subprocess.run(["kubectl", "version", "--client"], capture_output=True, text=True).stdout.split("\n")[0]
    print(f"idempotent deploy, median of {runs} paired runs; delayed = {delay:g} ms each way through a proxy; "
          f"kubectl {kubectl.split()[-1] if kubectl else '?'}")
    print(f"{'network':<10} {'kubectl':>9} {'meshreg':>9} {'ratio':>7} {'target':>8}")
    for network, kubectl, meshreg in rows:
        ratio = meshreg / kubectl
        verdict = "ok" if ratio <= TARGETS[network] else "MISSED"
        print(f"{network:<10} {kubectl:>8.2f}s {meshreg:>8.2f}s {ratio:>6.2f}x {'<= ' + str(TARGETS[network]) + 'x':>8}"
              f"  {verdict}")
    for name in ("kubectl", "meshreg"):
        sent, server = requests[name]
        methods = ", ".join(f"{n} {method}" for method, n in sent.items())
        target = "" if name == "kubectl" else \
            f"  target <= {MAX_REQUESTS}: {'ok' if sum(sent.values()) <= MAX_REQUESTS else 'MISSED'}"
        print(f"{name}: {sum(sent.values())} requests ({methods}; apiserver_request_total +{server}), "
              f"{connections[name]} connections{target}")


if __name__ == "__main__":
    main()
