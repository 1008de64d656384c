//! `strata`: the command line of the Strata vector store.

mod bench;
mod bench_remote;
mod bench_text;
mod build_report;
mod churn;
mod compact;
mod demo;
mod import;
mod input;
mod ops;
mod plot;
mod progress;
mod row;
mod sqlite_input;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Strata: an embedded, disk-resident vector store.
///
/// A store is a directory holding a write-ahead log, immutable segment files, deletion
/// files and a manifest. One process at a time may write it: the commands that change it
/// take its lock for their duration. `search`, `get` and `inspect` only read: they work
/// beside a writer and see its flushed segments and the records of its log. Start with
/// `strata demo` to see the whole life cycle.
///
/// Warnings (a GPU build falling back to the CPU, a failed background compaction) go to
/// standard error; `-v` adds what the store does (WAL replay at open, each flush and
/// compaction with rows and seconds), `-vv` more. `RUST_LOG` (for example
/// `RUST_LOG=strata=debug`) overrides both.
#[derive(Parser)]
#[command(name = "strata", version, propagate_version = true)]
struct Cli {
    /// More log detail on standard error: -v what the store does (replay, flushes,
    /// compactions), -vv debug, -vvv trace (default: warnings only).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    cmd: Command,
}

/// Sends the library's log to standard error: `RUST_LOG` when set, else warnings and
/// above, more with each `-v`.
fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum MetricArg {
    /// Squared Euclidean distance.
    L2,
    /// Inner product (larger is nearer; distances are reported negated).
    Ip,
    /// Cosine (vectors are normalised on write; distance is 1 - cos).
    Cosine,
}

impl From<MetricArg> for strata::Metric {
    fn from(m: MetricArg) -> Self {
        match m {
            MetricArg::L2 => strata::Metric::L2,
            MetricArg::Ip => strata::Metric::InnerProduct,
            MetricArg::Cosine => strata::Metric::Cosine,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum KeysArg {
    /// Unsigned 64-bit integer ids.
    U64,
    /// UTF-8 string keys (1 to 512 bytes).
    String,
}

impl From<KeysArg> for strata::KeyKind {
    fn from(k: KeysArg) -> Self {
        match k {
            KeysArg::U64 => strata::KeyKind::U64,
            KeysArg::String => strata::KeyKind::String,
        }
    }
}

/// What `f32` and `f16` segments are walked on before the rerank.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum WalkCodesArg {
    /// 8-bit scalar codes up to 512 dimensions, PQ codes above (or with `--pq-m`).
    Auto,
    /// PQ codes.
    Pq,
    /// 8-bit scalar codes on a per-dimension grid, one byte per dimension.
    Scalar,
}

impl From<WalkCodesArg> for strata::WalkCodes {
    fn from(w: WalkCodesArg) -> Self {
        match w {
            WalkCodesArg::Auto => strata::WalkCodes::Auto,
            WalkCodesArg::Pq => strata::WalkCodes::Pq,
            WalkCodesArg::Scalar => strata::WalkCodes::Scalar,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum CodecArg {
    /// 4 bytes per value, exact.
    F32,
    /// 2 bytes per value (IEEE half precision).
    F16,
    /// 1 byte per value (256 levels per dimension between its minimum and maximum).
    Int8,
}

impl From<CodecArg> for strata::VectorCodec {
    fn from(c: CodecArg) -> Self {
        match c {
            CodecArg::F32 => strata::VectorCodec::F32,
            CodecArg::F16 => strata::VectorCodec::F16,
            CodecArg::Int8 => strata::VectorCodec::Int8,
        }
    }
}

/// `--prefetch`: whether a search requests the pages it reads next together (the rows the
/// walk scores, a batch of neighbours at a time, the graph row it expands next, and the
/// rerank candidates' vectors).
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum PrefetchArg {
    /// While a sample of searches finds some of those pages missing from memory.
    Auto,
    /// On every search (one read-ahead request per run of pages).
    Always,
    /// Never: a page missing from memory is read when the walk or the rerank reaches it.
    Never,
}

impl From<PrefetchArg> for strata::Prefetch {
    fn from(p: PrefetchArg) -> Self {
        match p {
            PrefetchArg::Auto => strata::Prefetch::Auto,
            PrefetchArg::Always => strata::Prefetch::Always,
            PrefetchArg::Never => strata::Prefetch::Never,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum AnalyzerArg {
    /// Unicode words, lowercased, accents folded.
    Default,
    /// As default, without English stop words, stemmed (Snowball English).
    English,
    /// As default, with Chinese, Japanese and Korean text as character bigrams.
    Cjk,
}

impl From<AnalyzerArg> for strata::Analyzer {
    fn from(a: AnalyzerArg) -> Self {
        match a {
            AnalyzerArg::Default => strata::Analyzer::Default,
            AnalyzerArg::English => strata::Analyzer::English,
            AnalyzerArg::Cjk => strata::Analyzer::Cjk,
        }
    }
}

/// `--fusion`: how a hybrid search combines its vector and text rankings.
#[derive(Clone, Copy, ValueEnum)]
enum FusionArg {
    /// Reciprocal-rank fusion: each record scores w / (60 + rank) in each ranking.
    Rrf,
    /// Each ranking's scores min-max normalised, then alpha · vector + (1 − alpha) · text.
    Weighted,
}

#[derive(Clone, Copy, ValueEnum)]
enum SyncArg {
    /// Fsync before acknowledging each batch (survives power loss).
    Always,
    /// Fsync every 100 ms in the background (power loss may cost the last interval).
    Periodic,
    /// Leave write-back to the OS (survives process crashes, not power loss).
    Never,
    /// Fsync and ship to the store's bucket before acknowledging each batch (survives
    /// the loss of the machine; a store created with --remote only).
    Bucket,
}

impl From<SyncArg> for strata::Durability {
    fn from(s: SyncArg) -> Self {
        match s {
            SyncArg::Always => strata::Durability::Always,
            SyncArg::Periodic => {
                strata::Durability::Periodic(std::time::Duration::from_millis(100))
            }
            SyncArg::Never => strata::Durability::Never,
            SyncArg::Bucket => strata::Durability::Bucket,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Create an empty store.
    Create {
        /// Store directory (created if missing; must not hold a store).
        dir: PathBuf,
        /// Vector dimension.
        #[arg(long)]
        dim: usize,
        /// Distance metric.
        #[arg(long, value_enum)]
        metric: MetricArg,
        /// What identifies a record: u64 ids, or UTF-8 string keys of 1 to 512 bytes
        /// (JSON imports give "key"; output prints keys as JSON strings). Fixed for the
        /// store's life.
        #[arg(long, value_enum, default_value = "u64")]
        keys: KeysArg,
        /// How segments store the full vectors that rerank the graph's candidates and
        /// that `get` returns: f32 (exact), f16 (half the bytes) or int8 (a quarter;
        /// `get` returns the quantised values). f32 and f16 segments are walked on 8-bit
        /// or PQ codes and reranked on their rows; int8 segments are walked on their rows
        /// (no rerank, the smallest working set). docs/vector-codecs.md gives each
        /// codec's recall, disk and speed. Fixed for the store's life.
        #[arg(long, value_enum, default_value = "f32")]
        vector_codec: CodecArg,
        /// How records' text (JSON imports give "text") and text queries become terms
        /// (docs/text-search.md). Fixed for the store's life.
        #[arg(long, value_enum, default_value = "default")]
        analyzer: AnalyzerArg,
        /// Keep the store in a bucket, its source of truth: s3://bucket/prefix,
        /// gs://bucket/prefix, az://container/prefix or file:///folder. Every flush and
        /// compaction uploads its files and commits to the bucket before the local
        /// manifest; later commands on DIR commit there too. An S3-compatible endpoint,
        /// region and credentials come from the AWS_* environment variables
        /// (AWS_ENDPOINT, AWS_ALLOW_HTTP, AWS_REGION, AWS_ACCESS_KEY_ID, ...). If the
        /// bucket already holds a store, DIR becomes its new writer (restored from it).
        #[arg(long, value_name = "URL")]
        remote: Option<String>,
    },
    /// Rebuild a local store in DIR (new or empty) from a bucket alone: the segments and
    /// deletion files of its newest commit. The copy opens as a plain store.
    Restore {
        /// The bucket: s3://bucket/prefix, gs://..., az://..., file:///folder (credentials
        /// and endpoint from the AWS_*, GOOGLE_* or AZURE_* environment variables).
        url: String,
        /// Destination directory (created if missing; must be empty).
        dir: PathBuf,
    },
    /// Import vectors from .fvecs, .bvecs, .ivecs (TEXMEX), .npy (float32, 2-D), JSON
    /// lines (.jsonl, .ndjson, .json) or a JSON array (.json).
    ///
    /// A JSON row is {"id": u64, "vector": [numbers], "metadata": {...}, "payload": any
    /// JSON, "text": string} ("key": string instead of "id" in a store of string keys);
    /// all but "vector" are optional. "text" is what text searches find. Ids are row numbers (from 0, plus --ids-from; in a store of string
    /// keys, those numbers in decimal) unless the rows give "id" (or "key"): either every
    /// row gives one or none does. Existing records are replaced; an id given twice keeps
    /// the later row (and is reported).
    ///
    /// The whole file is checked first (format, dimension, finite values, the norm
    /// bound, payload size, ids), so bad input writes nothing; --skip-bad-rows writes the
    /// good rows instead and counts the bad ones. Rows are then written in atomic batches.
    /// If writing stops (a full disk), the error says which input rows are committed and
    /// the --from-row that continues. If the import is killed, what it committed stays
    /// (in the write-ahead log until indexed): `strata flush DIR` indexes it, and
    /// rerunning the same import (the ids are the same) or --from-row finishes it.
    /// Progress goes to standard error (a bar on a terminal, a line per tenth otherwise).
    ///
    /// With --table, FILE is an SQLite database and the rows are that table's, read
    /// (never written) in rowid order: `strata import DIR memories.db --table
    /// memory_embeddings --key-column memory_id --vector-column embedding
    /// --metadata-columns key,category`. The key column holds integers (a store of u64
    /// ids) or text (a store of string keys; integers become their decimal text); NULL
    /// metadata values are left out; a vector of the wrong size, or a NULL one, is an
    /// error naming the row by rowid and key. Input row numbers (--from-row, messages)
    /// count rows in rowid order from 0.
    Import {
        /// Store directory.
        dir: PathBuf,
        /// Input file; the format comes from the extension (an SQLite database with
        /// --table).
        file: PathBuf,
        /// Id of the first row.
        #[arg(long, default_value_t = 0)]
        ids_from: u64,
        /// Durability of each imported batch (periodic by default, a bulk-load setting;
        /// the library's own default is always).
        #[arg(long, value_enum, default_value = "periodic")]
        sync: SyncArg,
        /// Rows per atomic batch.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        /// Write the rows the store accepts and skip (and count) the others, instead of
        /// refusing the whole file.
        #[arg(long)]
        skip_bad_rows: bool,
        /// Start writing at this input row (0-based; earlier rows are read, not written),
        /// to continue an import that stopped.
        #[arg(long, default_value_t = 0)]
        from_row: u64,
        /// A JSON-lines file whose line i is the metadata object of input row i (an
        /// empty line or null: none), for inputs without their own (.fvecs, .npy, ...).
        #[arg(long)]
        metadata: Option<PathBuf>,
        /// Where to build the indexes of flushed segments: auto (a GPU when this binary
        /// has the `gpu` feature, one is present and the segment is large), cpu, or gpu.
        #[arg(long, default_value = "auto")]
        build_device: strata::BuildDevice,
        /// The table to import when FILE is an SQLite database.
        #[arg(long, requires = "vector_column", help_heading = "SQLite input")]
        table: Option<String>,
        /// The column naming each record (integers: ids; text: string keys). Without
        /// it, rows are named by their row numbers, as in other inputs.
        #[arg(long, requires = "table", help_heading = "SQLite input")]
        key_column: Option<String>,
        /// The column holding each vector.
        #[arg(long, requires = "table", help_heading = "SQLite input")]
        vector_column: Option<String>,
        /// How the vector column stores vectors: f32le or f64le (blobs of little-endian
        /// floats) or json (text like "[0.1, 0.2]"). Default f32le.
        #[arg(long, value_enum, requires = "table", help_heading = "SQLite input")]
        vector_encoding: Option<sqlite_input::VectorEncoding>,
        /// Columns that become metadata fields of the same names (comma-separated).
        #[arg(
            long,
            value_delimiter = ',',
            requires = "table",
            conflicts_with = "metadata",
            help_heading = "SQLite input"
        )]
        metadata_columns: Vec<String>,
        /// The column holding each record's text (what text searches find).
        #[arg(long, requires = "table", help_heading = "SQLite input")]
        text_column: Option<String>,
    },
    /// Search: one JSON line per query, {"query": row, "ids": [...], "distances": [...]}
    /// (with --with-payload, then "payloads": [...]).
    ///
    /// By vector (--queries), by text (--texts: BM25, exact top k; "distances" holds the
    /// negated scores, smaller is better), or both (hybrid: the two rankings fused,
    /// "distances" the negated fused scores); docs/text-search.md.
    ///
    /// Read-only: works while another process writes the store, and sees its flushed
    /// segments and the records of its write-ahead log.
    Search {
        /// Store directory (with --remote: the replica's cache directory).
        dir: PathBuf,
        /// Search a read replica of the store kept in this bucket (s3://bucket/prefix,
        /// ...; AWS_* variables for endpoint and credentials) at its newest commit:
        /// segment fronts are fetched into DIR, full vectors read by range.
        #[arg(long, value_name = "URL")]
        remote: Option<String>,
        /// With --remote: memory for full vectors read from the bucket, in MiB.
        #[arg(long, default_value_t = 256, requires = "remote")]
        cache_mb: u64,
        /// Query vectors (any import format).
        #[arg(long, required_unless_present = "texts")]
        queries: Option<PathBuf>,
        /// Query texts: JSON lines, line i {"text": "..."} the text of query i. With
        /// --queries as well, a hybrid search (one vector and one text per query).
        #[arg(long)]
        texts: Option<PathBuf>,
        /// How a hybrid search fuses its rankings: rrf (reciprocal rank, k = 60) or
        /// weighted (normalised scores).
        #[arg(long, value_enum, default_value = "rrf")]
        fusion: FusionArg,
        /// Weight of the vector ranking in a hybrid search, 0 to 1 (the text ranking
        /// weighs 1 − alpha); default 0.5, equal weights.
        #[arg(long)]
        alpha: Option<f32>,
        /// Candidates each side of a hybrid search contributes to the fusion (at
        /// least k).
        #[arg(long, default_value_t = strata::Fusion::DEFAULT_CANDIDATES)]
        candidates: usize,
        /// Neighbours per query.
        #[arg(long, default_value_t = 10)]
        k: usize,
        /// Brute-force search of every row, ignoring the graph indexes.
        #[arg(long)]
        exact: bool,
        /// Beam width of the graph walk per segment: larger finds more, slower. Without
        /// it, each segment is walked at the width its calibration gives for
        /// --target-recall (128 for a segment not yet calibrated).
        #[arg(long, conflicts_with = "target_recall")]
        ef: Option<usize>,
        /// The recall@k to reach (in (0, 1]; default 0.95) when --ef is not given: each
        /// segment is walked at the smallest width its calibration says meets it
        /// (docs/calibration.md; `strata calibrate` measures it).
        #[arg(long)]
        target_recall: Option<f64>,
        /// Graph candidates re-scored exactly with full vectors (default 100).
        #[arg(long)]
        rerank: Option<usize>,
        /// Add each hit's payload: a "payloads" array beside "ids" (JSON payloads as
        /// JSON, other bytes as a string or byte array, null for none).
        #[arg(long)]
        with_payload: bool,
        /// Add each hit's metadata: a "metadata" array after the other keys (null for
        /// none).
        #[arg(long)]
        with_metadata: bool,
        /// Add each hit's text: a "texts" array after the other keys (null for none).
        #[arg(long)]
        with_text: bool,
        /// Only records whose metadata passes this filter (JSON, the same for every
        /// query; see docs/filters.md), e.g. '{"kind": "fact", "ts": {"$gte": 1700000000}}'.
        #[arg(long, conflicts_with = "filters")]
        filter: Option<String>,
        /// A file of filters, one JSON object per line: line i filters query i.
        #[arg(long)]
        filters: Option<PathBuf>,
        /// Request each segment's rerank candidates from the disk together before
        /// reading them: auto (while some are found missing from memory), always, never.
        #[arg(long, value_enum, default_value = "auto")]
        prefetch: PrefetchArg,
    },
    /// Index the rows that are only in the write-ahead log (after an interrupted import
    /// or a crash): writes them to a segment, so searches use its graph index.
    Flush {
        /// Store directory.
        dir: PathBuf,
    },
    /// Print one record as JSON (read-only: works while another process writes).
    Get {
        /// Store directory.
        dir: PathBuf,
        /// Record id (the string key in a store of string keys).
        id: String,
    },
    /// Delete records by id (or key); reports how many were deleted and how many were
    /// not found (absent or already deleted).
    Delete {
        /// Store directory.
        dir: PathBuf,
        /// Ids to delete (string keys in a store of string keys).
        ids: Vec<String>,
        /// A file with one id (or key) per line.
        #[arg(long)]
        ids_file: Option<PathBuf>,
        /// Delete every record whose metadata passes this filter (JSON, see
        /// docs/filters.md), atomically; instead of ids.
        #[arg(long, conflicts_with_all = ["ids", "ids_file"])]
        filter: Option<String>,
    },
    /// Print how many live records pass a filter (all of them without one); read-only.
    Count {
        /// Store directory.
        dir: PathBuf,
        /// The filter (JSON, see docs/filters.md).
        #[arg(long)]
        filter: Option<String>,
    },
    /// Print records as JSON lines ({"id", "vector", "payload", "metadata"}) in id order,
    /// optionally only those passing a filter; read-only. When more remain, the last
    /// line on standard error says the --after that continues.
    Scan {
        /// Store directory.
        dir: PathBuf,
        /// The filter (JSON, see docs/filters.md).
        #[arg(long)]
        filter: Option<String>,
        /// Most records to print.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Start after this id.
        #[arg(long)]
        after: Option<u64>,
    },
    /// Print the store's segments, rows, tombstones and bytes per file kind as JSON
    /// (read-only: works while another process writes).
    Inspect {
        /// Store directory.
        dir: PathBuf,
    },
    /// Measure each indexed segment's recall per beam width, which searches by target
    /// recall (--target-recall, the default search) use to pick their width
    /// (docs/calibration.md). With --queries, every segment is calibrated on those
    /// queries (use queries like those the store will serve; the newest 256 are kept
    /// for later segments); without, the segments lacking a calibration are calibrated
    /// (on their rows, or on the queries kept). Prints each segment's calibration.
    Calibrate {
        /// Store directory.
        dir: PathBuf,
        /// Queries (.fvecs, .bvecs, .npy, or JSON lines with a "vector" each); at least 64.
        #[arg(long)]
        queries: Option<PathBuf>,
        /// Use only the first N queries.
        #[arg(long)]
        nq: Option<usize>,
        /// One JSON object per segment: {"segment", "rows", "source", "queries",
        /// "default_ef", "recall_at": [{"ef", "recall"}]}.
        #[arg(long)]
        json: bool,
    },
    /// Print the sizes a store reports as metrics (docs/metrics.md) in the Prometheus
    /// text format, one `name{labels} value` line each, or with --json as one object
    /// (read-only: works on a closed store and while another process writes).
    Stats {
        /// Store directory.
        dir: PathBuf,
        /// One JSON object: {"store": DIR, "metrics": [{"name", "labels", "value"}]}.
        #[arg(long)]
        json: bool,
    },
    /// Compact a closed store: merge segments by the size-tiered policy and rewrite
    /// segments with many deleted rows (or, with --full, everything into one segment).
    ///
    /// Takes the store's lock (an open store is refused), shows progress, prints the
    /// store before and after (segments, rows, tombstones, bytes) and verifies it at the
    /// end. Killing it at any moment leaves a store that opens with all its data: each
    /// merge becomes visible only when the manifest is renamed over the old one.
    Compact {
        /// Store directory.
        dir: PathBuf,
        /// Merge every segment into one, dropping all deleted rows.
        #[arg(long)]
        full: bool,
        /// Print the merges that would run and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Threads a merge may use (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Where to build the merged segments' indexes: auto, cpu or gpu (see import).
        #[arg(long, default_value = "auto")]
        build_device: strata::BuildDevice,
    },
    /// Write a consistent copy of the store into DEST (new or empty): segment and
    /// deletion files hard-linked (copied across file systems), the log copied, the
    /// manifest last. The copy is a closed store holding every committed write.
    ///
    /// Takes the store's lock. For a store another process has open, call
    /// `Db::checkpoint` in that process instead.
    Backup {
        /// Store directory.
        dir: PathBuf,
        /// Destination directory (created if missing; must be empty).
        dest: PathBuf,
    },
    /// Restore a damaged or missing MANIFEST from its mirror (MANIFEST-MIRROR), or the
    /// mirror from the manifest, then verify the store.
    ///
    /// Every publish writes both copies before removing any file the previous manifest
    /// named, so the mirror describes files that exist: nothing that was flushed is lost
    /// (rows of a flush it predates are in the log it names). When both copies are
    /// damaged it changes nothing and exits 1; restore from a backup.
    Repair {
        /// Store directory.
        dir: PathBuf,
    },
    /// Check every checksum and invariant; exit 0 when clean, 1 naming the first fault.
    Verify {
        /// Store directory.
        dir: PathBuf,
    },
    /// The whole life cycle on a seeded clustered data set: ingest, search, delete and
    /// upsert, crash, recover, check, compact while searching, verify, with recall
    /// against brute force and timings.
    Demo {
        /// Store directory (must be empty or absent; a temporary one by default).
        dir: Option<PathBuf>,
        /// Rows to ingest.
        #[arg(long, default_value_t = 50_000)]
        rows: usize,
        /// Dimension.
        #[arg(long, default_value_t = 96)]
        dim: usize,
        /// Seed of the data set.
        #[arg(long, default_value_t = 2026)]
        seed: u64,
    },
    /// Build a store from a TEXMEX data set and measure recall, QPS and latency.
    ///
    /// The distance kernels are the best this CPU runs (printed as `kernels ...`);
    /// `STRATA_KERNELS=avx2` or `portable` measures what a CPU without AVX-512 (or
    /// without AVX2) would see.
    Bench(Box<bench::BenchArgs>),
    /// Measure a store kept in a bucket: bucket-durable write and flush commit latency
    /// (p50/p99), a cold read replica's bytes and time to its first answer, replica QPS
    /// cold and warm beside the primary's, and the replica's catch-up after a commit.
    /// `bench/remote.sh` runs it against moto's S3 server on loopback.
    BenchRemote(Box<bench_remote::BenchRemoteArgs>),
    /// Benchmark text, vector and hybrid search on a set with relevance judgements
    /// (`../shared/data/manpages-minilm-384`): right row in the top k, MRR@k, nDCG@k and
    /// single-thread QPS per mode, on one store built from the base rows and their texts.
    /// `bench/text.sh` runs it beside bm25s and tantivy.
    BenchText(Box<bench_text::BenchTextArgs>),
    /// Measure compaction under churn: upsert every row several times, delete a
    /// fraction, let background compaction settle while a reader searches; prints write
    /// and space amplification, search latency during compaction against idle, and
    /// compaction throughput.
    Churn(Box<churn::ChurnArgs>),
}

/// What to do about an error, when there is a command for it.
fn hint(e: &anyhow::Error) -> &'static str {
    let manifest_damaged = e.chain().any(|c| {
        matches!(
            c.downcast_ref::<strata::Error>(),
            Some(strata::Error::Corruption { path, .. })
                if path.file_name().is_some_and(|n| n == "MANIFEST")
        )
    });
    if manifest_damaged {
        " (`strata repair DIR` restores the manifest from its mirror)"
    } else {
        ""
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let res = match cli.cmd {
        Command::Create {
            dir,
            dim,
            metric,
            keys,
            vector_codec,
            analyzer,
            remote,
        } => ops::create(
            &dir,
            dim,
            metric.into(),
            keys.into(),
            vector_codec.into(),
            analyzer.into(),
            remote,
        ),
        Command::Restore { url, dir } => ops::restore(&url, &dir),
        Command::Import {
            dir,
            file,
            ids_from,
            sync,
            batch,
            skip_bad_rows,
            from_row,
            metadata,
            build_device,
            table,
            key_column,
            vector_column,
            vector_encoding,
            metadata_columns,
            text_column,
        } => import::run(
            &dir,
            &file,
            &import::Plan {
                ids_from,
                batch_rows: batch.max(1),
                skip_bad_rows,
                from_row,
                metadata_file: metadata,
                sqlite: table.map(|table| sqlite_input::SqliteTable {
                    table,
                    key_column,
                    vector_column: vector_column.unwrap_or_default(),
                    vector_encoding: vector_encoding.unwrap_or(sqlite_input::VectorEncoding::F32le),
                    metadata_columns,
                    text_column,
                }),
            },
            sync.into(),
            build_device,
        ),
        Command::Search {
            dir,
            remote,
            cache_mb,
            queries,
            texts,
            fusion,
            alpha,
            candidates,
            k,
            exact,
            ef,
            target_recall,
            rerank,
            with_payload,
            with_metadata,
            with_text,
            filter,
            filters,
            prefetch,
        } => ops::parse_filter(filter.as_deref()).and_then(|filter| {
            let method = match (fusion, alpha) {
                (FusionArg::Rrf, None) => strata::Fusion::rrf().method,
                (FusionArg::Rrf, Some(a)) => strata::FusionMethod::Rrf {
                    k: 60.0,
                    vector_weight: a,
                    text_weight: 1.0 - a,
                },
                (FusionArg::Weighted, a) => strata::FusionMethod::Weighted {
                    alpha: a.unwrap_or(0.5),
                },
            };
            let fusion = strata::Fusion { method, candidates };
            fusion
                .validate()
                .map_err(|e| anyhow::anyhow!("--alpha: {e}"))?;
            ops::search(
                &dir,
                remote.as_deref().map(|url| (url, cache_mb << 20)),
                &ops::Queries {
                    vectors: queries.as_deref(),
                    texts: texts.as_deref(),
                    fusion,
                },
                &strata::SearchOptions {
                    k,
                    exact,
                    ef,
                    target_recall: Some(
                        target_recall.unwrap_or(strata::SearchOptions::DEFAULT_TARGET_RECALL),
                    ),
                    rerank,
                    with_payload,
                    with_metadata,
                    with_text,
                    bm25: strata::Bm25::default(),
                    filter,
                    prefetch: prefetch.into(),
                },
                filters.as_deref(),
            )
        }),
        Command::Get { dir, id } => ops::get(&dir, &id),
        Command::Flush { dir } => ops::flush(&dir),
        Command::Delete {
            dir,
            ids,
            ids_file,
            filter: Some(filter),
        } if ids.is_empty() && ids_file.is_none() => ops::delete_by_filter(&dir, &filter),
        Command::Delete {
            dir, ids, ids_file, ..
        } => ops::delete(&dir, ids, ids_file.as_deref()),
        Command::Count { dir, filter } => ops::count(&dir, filter.as_deref()),
        Command::Scan {
            dir,
            filter,
            limit,
            after,
        } => ops::scan(&dir, filter.as_deref(), limit, after),
        Command::Inspect { dir } => ops::inspect(&dir),
        Command::Stats { dir, json } => ops::stats(&dir, json),
        Command::Calibrate {
            dir,
            queries,
            nq,
            json,
        } => ops::calibrate(&dir, queries.as_deref(), nq, json),
        Command::Verify { dir } => ops::verify(&dir),
        Command::Backup { dir, dest } => ops::backup(&dir, &dest),
        Command::Repair { dir } => ops::repair(&dir),
        Command::Compact {
            dir,
            full,
            dry_run,
            threads,
            build_device,
        } => compact::run(&dir, full, dry_run, threads, build_device),
        Command::Demo {
            dir,
            rows,
            dim,
            seed,
        } => demo::run(dir, rows, dim, seed),
        Command::Bench(args) => bench::run(&args),
        Command::BenchRemote(args) => bench_remote::run(&args),
        Command::BenchText(args) => bench_text::run(&args),
        Command::Churn(args) => churn::run(&args),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}{}", hint(&e));
            ExitCode::FAILURE
        }
    }
}
