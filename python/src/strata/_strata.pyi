"""Type stubs of the native module behind `strata` (use `strata.open` and `strata.Store`)."""

from typing import Any, Optional, Sequence, Tuple

import numpy as np
import numpy.typing as npt

__version__: str

class NativeStore:
    def __init__(
        self,
        path: str,
        dim: Optional[int] = None,
        metric: str = "cosine",
        keys: str = "u64",
        analyzer: Optional[str] = None,
        vector_codec: Optional[str] = None,
        durability: str = "always",
        memtable_mb: Optional[int] = None,
        memtable_index: bool = True,
        recall_sample: Optional[float] = None,
        recall_seed: int = 0,
        recall_adapt: bool = False,
        remote: Optional[str] = None,
        remote_options: Optional[list[tuple[str, str]]] = None,
    ) -> None: ...
    @property
    def dim(self) -> int: ...
    @property
    def metric(self) -> str: ...
    @property
    def keys(self) -> str: ...
    def upsert(
        self,
        keys: Sequence[Any],
        vectors: npt.NDArray[np.float32],
        metadata: Optional[Sequence[Optional[str]]] = None,
        texts: Optional[Sequence[Optional[str]]] = None,
        payloads: Optional[Sequence[Optional[bytes]]] = None,
    ) -> None: ...
    def check_rows(
        self,
        keys: Sequence[Any],
        vectors: npt.NDArray[np.float32],
        metadata: Optional[Sequence[Optional[str]]] = None,
        texts: Optional[Sequence[Optional[str]]] = None,
        payloads: Optional[Sequence[Optional[bytes]]] = None,
    ) -> Optional[Tuple[int, str]]: ...
    def search(
        self,
        queries: npt.NDArray[np.float32],
        k: int = 10,
        filter: Optional[str] = None,
        ef: Optional[int] = None,
        rerank: Optional[int] = None,
        exact: bool = False,
        target_recall: Optional[float] = None,
    ) -> list[tuple[list[Any], npt.NDArray[np.float32]]]: ...
    def search_one(
        self,
        query: npt.NDArray[np.float32],
        k: int = 10,
        filter: Optional[str] = None,
        ef: Optional[int] = None,
        rerank: Optional[int] = None,
        exact: bool = False,
        target_recall: Optional[float] = None,
    ) -> tuple[list[Any], npt.NDArray[np.float32]]: ...
    def search_matrix(
        self,
        queries: npt.NDArray[np.float32],
        k: int = 10,
        filter: Optional[str] = None,
        ef: Optional[int] = None,
        rerank: Optional[int] = None,
        exact: bool = False,
        target_recall: Optional[float] = None,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]: ...
    def text_search(
        self, text: str, k: int = 10, filter: Optional[str] = None
    ) -> tuple[list[Any], npt.NDArray[np.float32]]: ...
    def hybrid_search(
        self,
        vector: npt.NDArray[np.float32],
        text: str,
        k: int = 10,
        filter: Optional[str] = None,
        fusion: str = "rrf",
        alpha: Optional[float] = None,
        candidates: int = 100,
    ) -> tuple[list[Any], npt.NDArray[np.float32]]: ...
    def get_many(self, keys: Sequence[Any]) -> list[Optional[dict]]: ...
    def delete(self, keys: Sequence[Any]) -> None: ...
    def delete_filter(self, filter: str) -> int: ...
    def count(self, filter: Optional[str] = None) -> int: ...
    def scan(
        self, filter: Optional[str] = None, after: Optional[int] = None, limit: int = 100
    ) -> tuple[list[dict], Optional[int]]: ...
    def flush(self) -> None: ...
    def compact(self, full: bool = False) -> int: ...
    def stats(self) -> dict: ...
    def calibrate(self, queries: npt.NDArray[np.float32]) -> list[dict]: ...
    def calibration(self) -> list[dict]: ...
    def observed_recall(self) -> Optional[dict]: ...
    def close(self) -> None: ...

class NativeReplica:
    def __init__(
        self,
        url: str,
        cache_dir: str,
        cache_bytes: int,
        options: Optional[list[tuple[str, str]]] = None,
    ) -> None: ...
    @property
    def dim(self) -> int: ...
    @property
    def keys(self) -> str: ...
    @property
    def seq(self) -> int: ...
    def __len__(self) -> int: ...
    def refresh(self) -> bool: ...
    def stats(self) -> dict: ...
    def search_one(
        self,
        query: npt.NDArray[np.float32],
        k: int = 10,
        filter: Optional[str] = None,
        ef: Optional[int] = None,
        rerank: Optional[int] = None,
        exact: bool = False,
        target_recall: Optional[float] = None,
    ) -> tuple[list[Any], npt.NDArray[np.float32]]: ...
    def search(
        self,
        queries: npt.NDArray[np.float32],
        k: int = 10,
        filter: Optional[str] = None,
        ef: Optional[int] = None,
        rerank: Optional[int] = None,
        exact: bool = False,
        target_recall: Optional[float] = None,
    ) -> list[tuple[list[Any], npt.NDArray[np.float32]]]: ...
    def get(self, key: Any) -> Optional[dict]: ...

def restore(url: str, path: str, options: Optional[list[tuple[str, str]]] = None) -> dict: ...
