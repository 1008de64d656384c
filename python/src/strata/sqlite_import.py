"""Moving an SQLite table of embeddings into a store: :func:`import_sqlite`, the Python
side of ``strata import DIR memories.db --table T ...``."""

from __future__ import annotations

import json
import pathlib
import sqlite3
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .errors import InvalidArgument

_WIDTH = {"f32le": ("<f4", 4), "f64le": ("<f8", 8)}
_PAGE = 1024


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _Table:
    """A read-only cursor over the table's rows in rowid order, a page at a time."""

    def __init__(self, database: str, table: str, columns: List[Tuple[str, str]]):
        uri = pathlib.Path(database).resolve().as_uri() + "?mode=ro"
        self.conn = sqlite3.connect(uri, uri=True)
        try:
            self._open(database, table, columns)
        except BaseException:
            self.conn.close()
            raise

    def _open(self, database: str, table: str, columns: List[Tuple[str, str]]) -> None:
        self.table = table
        found = [r[1] for r in self.conn.execute("SELECT * FROM pragma_table_info(?)", (table,))]
        if not found:
            tables = [r[0] for r in self.conn.execute(
                "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
            raise InvalidArgument(f"{database} has no table {table!r} (its tables: {', '.join(tables) or 'none'})")
        for what, column in columns:
            if column not in found:
                raise InvalidArgument(f"{what}: table {table!r} has no column {column!r} (its columns: {', '.join(found)})")
        # The rowid under a name no declared column shadows.
        lower = {c.lower() for c in found}
        rowid = next((a for a in ("rowid", "_rowid_", "oid") if a not in lower), None)
        if rowid is None:
            raise InvalidArgument(f"table {table!r} declares columns named rowid, _rowid_ and oid, "
                                  "which hide its row order")
        try:
            last = self.conn.execute(f"SELECT max({rowid}) FROM {_quote(table)}").fetchone()[0]
        except sqlite3.OperationalError as e:
            raise InvalidArgument(f"cannot read table {table!r} in rowid order ({e}); views and tables "
                                  "declared WITHOUT ROWID are not read") from None
        # Rows added after this point are not read: both passes see the same rows.
        self.bound = f"{rowid} <= {last if last is not None else -(2**63)}"
        self.rowid = rowid
        self.select = f"SELECT {rowid}, {', '.join(_quote(c) for _, c in columns)} FROM {_quote(table)}"

    def pages(self) -> Iterator[list]:
        r = self.rowid
        rows = self.conn.execute(f"{self.select} WHERE {self.bound} ORDER BY {r} LIMIT ?", (_PAGE,)).fetchall()
        while rows:
            yield rows
            if len(rows) < _PAGE:
                return
            rows = self.conn.execute(f"{self.select} WHERE {r} > ? AND {self.bound} ORDER BY {r} LIMIT ?",
                                     (rows[-1][0], _PAGE)).fetchall()


def _vector(value, encoding: str, column: str, at: str) -> np.ndarray:
    if value is None:
        raise InvalidArgument(f"{at}: vector column {column!r} is NULL")
    if encoding == "json":
        try:
            v = json.loads(value)
            a = np.asarray(v, dtype=np.float32)
        except (ValueError, TypeError) as e:
            raise InvalidArgument(f"{at}: vector column {column!r}: not a JSON array of numbers ({e})") from None
        if a.ndim != 1:
            raise InvalidArgument(f"{at}: vector column {column!r}: not a JSON array of numbers")
        return a
    dtype, width = _WIDTH[encoding]
    if isinstance(value, str):
        raise InvalidArgument(f"{at}: vector column {column!r} holds text, not a {encoding} blob; "
                              "is it vector_encoding='json'?")
    if not isinstance(value, bytes):
        raise InvalidArgument(f"{at}: vector column {column!r} holds {value!r}, not a vector")
    if not value or len(value) % width:
        raise InvalidArgument(f"{at}: vector column {column!r} holds a {len(value)}-byte blob, not a whole "
                              f"number of {width}-byte values ({encoding}); is vector_encoding right?")
    return np.frombuffer(value, dtype=dtype).astype(np.float32)


def import_sqlite(
    store,
    database: str,
    table: str,
    vector_column: str,
    key_column: Optional[str] = None,
    vector_encoding: str = "f32le",
    metadata_columns: Sequence[str] = (),
    text_column: Optional[str] = None,
) -> int:
    """Copies the rows of ``table`` in the SQLite file ``database`` into ``store`` (a
    :class:`strata.Store`), in rowid order, and returns how many were written.

    Each row becomes a record named by ``key_column`` (integers in a store of ``u64``
    keys; text, or integers as their decimal text, in a store of ``string`` keys; without
    one, rows are numbered from 0), with the vector of ``vector_column`` (``f32le`` or
    ``f64le``: a blob of little-endian floats; ``json``: text like ``"[0.1, 0.2]"``),
    metadata fields named after ``metadata_columns`` (NULLs left out) and the text of
    ``text_column``. The whole table is checked first, by the store's own rules, so a
    bad row (a blob of the wrong length, a NULL or non-finite vector, a key of the wrong
    kind, metadata or text over the limits) raises :class:`InvalidArgument` naming it by
    rowid and key and writes nothing. Rows are then written in atomic batches: an
    interrupted import leaves a prefix of the rows, never part of one; the same call
    again finishes it (keys are the same). The database is opened read-only; rows added
    to the table after the call starts are not read."""
    if vector_encoding not in ("f32le", "f64le", "json"):
        raise InvalidArgument(f"vector_encoding {vector_encoding!r}: use 'f32le', 'f64le' or 'json'")
    if isinstance(metadata_columns, str):
        raise InvalidArgument("metadata_columns is a list of column names, not one string")
    for c in metadata_columns:
        if not c or "." in c:
            raise InvalidArgument(f"metadata_columns: {c!r} cannot name a metadata field (non-empty, no '.')")
    columns = [("vector_column", vector_column)]
    columns += [("key_column", key_column)] if key_column else []
    columns += [("text_column", text_column)] if text_column else []
    columns += [("metadata_columns", c) for c in metadata_columns]
    source = _Table(str(database), table, columns)
    string_keys = store.keys == "string"

    def batches() -> Iterator[tuple]:
        number = 0
        for page in source.pages():
            keys, vectors, metas, texts, where = [], [], [], [], []
            for row in page:
                rowid, values = row[0], list(row[2:])
                at = f"table {table!r} rowid {rowid}"
                if key_column:
                    key = values.pop(0)
                    if isinstance(key, int) and not isinstance(key, bool):
                        if not string_keys and key < 0:
                            raise InvalidArgument(f"{at}: key column {key_column!r} holds {key}, below 0")
                        key = str(key) if string_keys else key
                    elif isinstance(key, str) and string_keys:
                        pass
                    elif key is None:
                        raise InvalidArgument(f"{at}: key column {key_column!r} is NULL")
                    else:
                        raise InvalidArgument(
                            f"{at}: key column {key_column!r} holds {type(key).__name__}; this store has "
                            f"{'string keys' if string_keys else 'u64 ids (integers)'}")
                    at += f" (key {key!r})"
                else:
                    key = str(number) if string_keys else number
                number += 1
                v = _vector(row[1], vector_encoding, vector_column, at)
                if v.shape[0] != store.dim:
                    raise InvalidArgument(f"{at}: dimension {v.shape[0]}, the store has {store.dim}")
                text = values.pop(0) if text_column else None
                if text is not None and not isinstance(text, str):
                    raise InvalidArgument(f"{at}: text column {text_column!r} holds {type(text).__name__}, not text")
                meta = {}
                for c, x in zip(metadata_columns, values):
                    if isinstance(x, bytes):
                        raise InvalidArgument(f"{at}: metadata column {c!r} holds a {len(x)}-byte blob; "
                                              "metadata is numbers and text")
                    if x is not None:
                        meta[c] = x
                keys.append(key)
                vectors.append(v)
                metas.append(None if not meta else json.dumps(meta))
                texts.append(text)
                where.append(at)
            yield keys, np.stack(vectors), metas, texts, where

    try:
        native = store._db
        for keys, vectors, metas, texts, where in batches():
            refused = native.check_rows(keys, vectors, metas, texts, None)
            if refused is not None:
                raise InvalidArgument(f"{where[refused[0]]}: {refused[1]}; nothing was written")
        written = 0
        for keys, vectors, metas, texts, _ in batches():
            native.upsert(keys, vectors, metas, texts, None)
            written += len(keys)
        return written
    finally:
        source.conn.close()
