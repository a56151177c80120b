"""Embedding spread over a Dask cluster (``coder suggest --dask ADDRESS`` or ``--workers N``).

The study file stays single-writer: texts go out in partitions to the cluster's workers, each
of which loads the embedding model once (a worker plugin keeps one embedder per backend in the
worker process), and the vectors come back to this process, which writes them to the cache as
each partition arrives. A :class:`DaskEmbedder` is an ordinary embedder to the rest of coder:
its ``name`` is its backend's, so its vectors are the ones that backend makes on one computer.

Texts are sent to the workers as they are: use a cluster on computers you trust with the
interviews, and TLS (a ``tls://`` address with Dask's security settings) when they leave this
one. Dask moves tasks and arrays with its own serialisation (cloudpickle, msgpack); nothing of
it is stored in the study.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import numpy as np

from coder.errors import CoderError
from coder.machine.embed import Embedder, make_embedder

PARTITION = 256          # texts per task: enough to fill the model's batches, small to balance
WAIT_FOR_WORKERS = 60.0  # seconds to wait for a scheduler's first worker
CONNECT_TIMEOUT = "10s"  # to reach the scheduler


class ClusterError(CoderError):
    """The Dask cluster cannot be reached, has no workers, or a worker failed."""


def _key(spec: dict[str, Any]) -> str:
    return json.dumps(spec, sort_keys=True)


@lru_cache(maxsize=4)
def worker_embedder(key: str) -> Embedder:
    """The embedder of a backend spec in this (worker) process, made once."""
    return make_embedder(**json.loads(key))


def encode_partition(key: str, texts: list[str]) -> np.ndarray:
    """The task a worker runs: its embedder's float32 vectors of ``texts``."""
    return np.asarray(worker_embedder(key).encode(list(texts)), dtype=np.float32)


def _plugin_class():
    from distributed.diagnostics.plugin import WorkerPlugin

    class EmbedderPlugin(WorkerPlugin):
        """Loads the model when a worker starts (or joins later), once per worker process."""

        def __init__(self, key: str):
            self.key = key

        def setup(self, worker) -> None:
            worker_embedder(self.key).encode(["warming up"])

    return EmbedderPlugin


class DaskEmbedder:
    """``base``'s backend, run on a Dask cluster: the scheduler at ``address``, or a local
    cluster of ``workers`` processes (one thread each, bound to 127.0.0.1)."""

    def __init__(self, base: Embedder, *, address: str | None = None, workers: int | None = None,
                 partition: int = PARTITION):
        if (address is None) == (workers is None):
            raise CoderError("give either a scheduler address or a number of local workers")
        if workers is not None and workers < 1:
            raise CoderError("--workers must be at least 1")
        spec = getattr(base, "spec", None)
        if spec is None:
            raise CoderError(f"embedder {base.name!r} cannot be rebuilt on a cluster worker")
        spec = dict(spec)
        if workers is not None and spec.get("backend", "").startswith("onnx"):
            spec["threads"] = max(1, (os.cpu_count() or 1) // workers)  # no oversubscription
        self.spec = spec
        self.name = base.name
        self.backend = getattr(base, "backend", spec.get("backend"))
        self.address = address
        self.n_workers = workers
        self.partition = partition
        self._key = _key(spec)
        self._client = None
        self._cluster = None

    # -- the cluster ----------------------------------------------------------------------------
    def start(self) -> DaskEmbedder:
        """Connect (or start the local cluster), wait for a worker, load the model on each."""
        if self._client is not None:
            return self
        from distributed import Client, LocalCluster

        try:
            if self.address is not None:
                self._client = Client(self.address, timeout=CONNECT_TIMEOUT)
            else:
                self._cluster = LocalCluster(n_workers=self.n_workers, threads_per_worker=1,
                                             processes=True, host="127.0.0.1",
                                             dashboard_address="127.0.0.1:0",  # no fixed port
                                             silence_logs=logging.ERROR)
                self._client = Client(self._cluster)
        except (OSError, TimeoutError) as e:
            self.close()
            raise ClusterError(f"cannot reach the Dask scheduler at {self.address} ({e})",
                               hint="start one with: dask scheduler --host 127.0.0.1, and "
                                    "workers with: dask worker ADDRESS") from None
        try:
            self._client.wait_for_workers(1, timeout=WAIT_FOR_WORKERS)
        except (OSError, TimeoutError):
            self.close()
            raise ClusterError(f"the Dask scheduler at {self.address} has no workers after "
                               f"{WAIT_FOR_WORKERS:.0f} s",
                               hint="start some with: dask worker ADDRESS") from None
        name = "coder-embedder-" + hashlib.sha256(self._key.encode()).hexdigest()[:10]
        try:
            self._client.register_plugin(_plugin_class()(self._key), name=name)
        except Exception as e:
            self.close()
            raise ClusterError(f"the cluster's workers could not load the embedding model "
                               f"({type(e).__name__}: {e})",
                               hint="install coder on every worker (same version)") from None
        return self

    def workers(self) -> int:
        """How many workers the cluster has now."""
        self.start()
        return len(self._client.scheduler_info(n_workers=-1)["workers"])

    def close(self) -> None:
        client, cluster, self._client, self._cluster = self._client, self._cluster, None, None
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()

    def __enter__(self) -> DaskEmbedder:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- encoding -------------------------------------------------------------------------------
    def iter_encode(self, texts: list[str]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(row numbers, vectors) per partition, in the order the workers finish them. Texts
        are sorted by length first, so each partition pads little in the model's batches."""
        from distributed import as_completed

        self.start()
        texts = list(texts)
        order = np.argsort([len(t) for t in texts], kind="stable")
        parts = [order[i:i + self.partition] for i in range(0, len(order), self.partition)]
        futures, rows_of = [], {}
        for rows in parts:
            fut = self._client.submit(encode_partition, self._key, [texts[i] for i in rows],
                                      pure=False)
            futures.append(fut)
            rows_of[fut.key] = rows
        try:
            for fut, vectors in as_completed(futures, with_results=True):
                rows = rows_of[fut.key]
                if vectors.ndim != 2 or len(vectors) != len(rows):
                    raise ClusterError(f"a worker returned {vectors.shape} vectors for "
                                       f"{len(rows)} texts")
                yield rows, vectors
        except ClusterError:
            raise
        except Exception as e:
            raise ClusterError(f"a worker failed to encode texts ({type(e).__name__}: {e})",
                               hint="the vectors received so far are cached; run again to "
                                    "encode the rest") from None
        finally:
            pending = [f for f in futures if not f.done()]
            if pending:  # partitions not waited for (an error) are not left running
                self._client.cancel(pending)

    def encode(self, texts: list[str]) -> np.ndarray:
        out: np.ndarray | None = None
        for rows, vectors in self.iter_encode(texts):
            if out is None:
                out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
            out[rows] = vectors
        return out if out is not None else np.zeros((0, 0), dtype=np.float32)
