//! Command-line declarations (clap derive). Doc comments are the `--help` text.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// clusterlab: reproducible deep-clustering research.
///
/// A YAML grid declares methods × seeds × datasets × hyper-parameters; `sweep` trains every
/// cell and records each run under runs/<grid>/<run-id>/ (config, provenance, status, Parquet);
/// `report` turns the runs into a paper-style table (mean ± std over seeds).
#[derive(Debug, Parser)]
#[command(name = "clusterlab", version, about, long_about)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every command.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Root directory of the run store (one folder per grid, one per run inside).
    #[arg(
        long,
        global = true,
        default_value = "runs",
        env = "CLUSTERLAB_RUNS_DIR"
    )]
    pub runs_dir: PathBuf,
    /// Root directory of generated reports (reports/<grid>/table.md, ...).
    #[arg(
        long,
        global = true,
        default_value = "reports",
        env = "CLUSTERLAB_REPORTS_DIR"
    )]
    pub reports_dir: PathBuf,
    /// More log output on stderr (-v info, -vv debug, -vvv trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Device to train on: `auto` (the first GPU if this binary has CUDA and one answers, else
    /// the CPU with a warning), `cpu`, or `cuda[:i]` (an error when unavailable, never a silent
    /// CPU run). CUDA needs the binary of `just build-cuda`.
    #[arg(
        long,
        global = true,
        default_value = "auto",
        env = "CLUSTERLAB_DEVICE",
        value_name = "auto|cpu|cuda[:i]"
    )]
    pub device: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train every pending cell of a grid, then print and write its results table.
    ///
    /// GRID is a path to a YAML grid, or NAME for experiments/NAME.yaml. Without GRID, the
    /// embedded smoke grid runs (synthetic data, no download). Completed cells are skipped, so
    /// re-running a sweep resumes it. Exit code 0 when every cell completed, 1 when a run
    /// failed, 2 on bad input (nothing is written then).
    Sweep(SweepArgs),
    /// Run one cell of a grid by its index (as listed by `sweep --dry-run`).
    ///
    /// Idempotent: a completed cell exits 0 at once. Meant for job arrays (one task per cell).
    Run(RunArgs),
    /// Summarise a grid's runs: counts per status, failed runs with their errors, and runs
    /// recorded at a git commit other than the current one.
    Status(StatusArgs),
    /// Check that a grid's runs are whole; with --repair, set damaged runs aside.
    ///
    /// Per run: status.json parses and matches the files present (a completed run has its
    /// config, provenance, epochs and result), every Parquet file reads, every checkpoint's
    /// tensors match the SHA-256 and size its JSON records. Per grid: the result index's lines
    /// agree with the result files, caches read, no temp file of a dead writer is left. Lists
    /// each problem (DAMAGED, or a harmless note). --repair moves damaged runs to
    /// runs/<grid>/.damaged/ so that the next sweep redoes them, sets damaged checkpoints aside,
    /// rewrites the index and removes leftovers. Exit 0 when no damage is (left), 1 otherwise,
    /// 2 when there is no such grid.
    Verify(VerifyArgs),
    /// Precompute the foundation-backbone features a grid's cells need, into the store's
    /// feature cache (runs/.features/), with a progress bar and images/s.
    ///
    /// One entry per (weights SHA-256, preprocessing, dataset fingerprint, split), computed
    /// once and shared by every cell, worker and Slurm task (a process that needs an entry
    /// another is computing waits for it). Cells on other backbones are skipped.
    Features(FeaturesArgs),
    /// Re-run a recorded run from its stored config in a scratch directory and compare its
    /// metrics bit for bit with the recorded ones (the original run is never touched).
    ///
    /// Warns when the current git commit or dirty state differs from the recorded one.
    /// Exit 0 when every metric is identical, 1 otherwise.
    Reproduce(ReproduceArgs),
    /// Show how two runs differ: resolved config keys and provenance (commit, host, ...).
    Diff(DiffArgs),
    /// Cluster new images with a finished run: its final weights, its test transform and its
    /// own cluster head (runs evaluated by `method.eval: argmax`).
    ///
    /// IMAGES are PNG/JPEG files or folders (read recursively, in path order); each image is
    /// decoded to RGB and resized to the run's `dataset.image_size` as the image-folder
    /// datasets are (grayscale when the run trained on one channel). Writes one Parquet row per
    /// image: path, cluster, confidence (cosine to its cluster's mean feature direction),
    /// PCA and t-SNE coordinates of the features; `--sheets DIR` adds a contact sheet per
    /// cluster (its most and least confident images).
    ///
    /// Example: clusterlab predict 3f2a9c0d1e2b4a5f photos/ --out photos.parquet --sheets sheets/
    Predict(PredictArgs),
    /// List a grid's completed runs: run id, the config keys that vary, final metrics.
    ///
    /// `--where` filters (repeatable, all must hold): KEY=VALUE, KEY!=VALUE, KEY>VALUE,
    /// KEY>=VALUE, KEY<VALUE, KEY<=VALUE over any result column, e.g.
    /// `--where method.name=cc --where final_nmi>0.8`.
    Runs(RunsArgs),
    /// Run SQL over the run store through polars: table `runs` (one row per completed run, all
    /// grids: flattened config, metrics, provenance) and table `epochs` (one row per epoch).
    ///
    /// Example: clusterlab sql 'SELECT "method.name", AVG(final_nmi) FROM runs GROUP BY 1'
    Sql(SqlArgs),
    /// Print a grid's results table and write it to reports/<grid>/table.md.
    ///
    /// Reads the run store only (a lazy scan of every run's result.parquet): works after a
    /// sweep on this machine or on runs copied from elsewhere. GRID is a grid file, a name under
    /// experiments/, or a grid name present in the run store.
    Report(ReportArgs),
    /// Measure speed: training steps or augmentation throughput; prints one JSON line.
    ///
    /// The model and data come from the run config (defaults, `--grid`'s base, `--set`), so
    /// `bench train --set model.widths=[16,32,64,128] --set dataset.image_size=24` measures
    /// exactly what a sweep would train.
    Bench(BenchArgs),
    /// Submit a grid's pending cells to Slurm as one job array (array task id = cell index).
    ///
    /// Writes runs/<grid>/.launch/manifest.json (the pending cells and their run ids) and
    /// array.sbatch, then runs `sbatch --parsable` and prints the job id. Each task runs
    /// `clusterlab run GRID --index $SLURM_ARRAY_TASK_ID`: idempotent, resumes from the cell's
    /// checkpoint, and on Slurm's warning signal (USR1) checkpoints and requeues itself.
    /// Resources come from the grid's `slurm:` section; flags override it. Logs go to
    /// runs/<grid>/.launch/logs/<job>_<cell>.out. Exit 2 when sbatch is missing.
    Slurm(SlurmArgs),
    /// Render a Kubernetes Indexed Job that runs a grid's pending cells (not applied).
    ///
    /// completions = pending cells, completion index k runs the k-th cell of the manifest
    /// (runs/<grid>/.launch/manifest.json, written too); image and resources come from the
    /// grid's `k8s:` section, flags override it. GRID, --runs-dir and --reports-dir are used
    /// as given, resolved inside the container from its working directory.
    K8s(K8sArgs),
    /// Datasets: list the known ones and their state, check one end to end, download one.
    ///
    /// Files are looked for under the data root ($CLUSTERLAB_DATA, default data/), or at
    /// dataset.path.
    Data(DataArgs),
    /// Serve a read-only web view of the run store on 127.0.0.1, live while sweeps run.
    ///
    /// The runs of every grid (state, the config keys that vary, final and best metrics;
    /// filtered with the `runs --where` language, sorted by any column), one run (config,
    /// provenance, log tail, loss and score curves, cluster sizes, confusion matrix,
    /// embedding, images of each cluster) and several runs (curves overlaid, mean ± std per
    /// config, their table). Running runs' curves update every 2 s. Nothing is written to the
    /// store. With --host, the server listens there and every request needs the token printed
    /// at start. Stops with Ctrl-C.
    Ui(UiArgs),
    /// Evaluate golden cross-check cases (JSON) against clusterlab's implementation.
    ///
    /// Prints, per case, computed vs expected and pass/fail; exit 1 if any case fails.
    /// The cases in tests/golden/ come from an independent NumPy/scikit-learn script.
    Golden(GoldenArgs),
}

// Arguments of `sweep` (its help text is the doc comment of `Command::…`).
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Grid file or name (default: the embedded experiments/smoke.yaml).
    pub grid: Option<String>,
    /// List every cell with its run id, status and what the sweep would do; run nothing.
    /// Downloads nothing: `hf:` weights missing from the Hugging Face cache leave their cells'
    /// run ids provisional (a note on stderr names them).
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: print every cell's resolved config instead, as YAML documents separated
    /// by `---`, each preceded by a comment line with its index, run id and axis values.
    #[arg(long, requires = "dry_run")]
    pub show_config: bool,
    /// Retry cells whose last run failed (by default they are skipped and reported).
    #[arg(long)]
    pub rerun_failed: bool,
    /// Recompute: `all`, or one run id (its directory is cleared first).
    #[arg(long, value_name = "RUN|all")]
    pub force: Option<String>,
    /// Also recompute completed runs whose recorded git commit differs from the current one
    /// (by default they count as done).
    #[arg(long)]
    pub rerun_changed_code: bool,
    /// Worker processes running cells in parallel (each `clusterlab run GRID --index I`).
    #[arg(long, short = 'j', default_value_t = 1)]
    pub jobs: usize,
    /// Devices of the worker processes, comma-separated (e.g. cuda:0,cuda:1): worker slot k
    /// trains on the k-th (cycling). Default: every worker uses `--device`.
    #[arg(long, value_delimiter = ',', value_name = "DEV,..")]
    pub devices: Vec<String>,
    #[command(flatten)]
    pub overrides: OverrideArgs,
}

// Arguments of `run` (its help text is the doc comment of `Command::…`).
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Grid file or name.
    pub grid: String,
    /// Cell index, 0-based.
    #[arg(long)]
    pub index: usize,
    /// Refuse (exit 2) unless cell INDEX has this run id: a job array submitted earlier
    /// must not run another cell after the grid file changed (set by `clusterlab slurm`).
    #[arg(long, value_name = "RUN_ID")]
    pub expect_run_id: Option<String>,
    #[command(flatten)]
    pub overrides: OverrideArgs,
}

// Arguments of `status` (its help text is the doc comment of `Command::…`).
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Grid file, experiments/ name or stored grid name (default: smoke).
    pub grid: Option<String>,
    /// Redraw every cell's progress (state, epoch, last loss and scores, ETA) until every
    /// cell has completed or failed, or Ctrl-C; for sweeps running in worker processes, on
    /// Slurm or in another terminal.
    #[arg(long)]
    pub watch: bool,
    /// Seconds between redraws of --watch.
    #[arg(long, default_value_t = 2.0, value_name = "SECS")]
    pub interval: f64,
    #[command(flatten)]
    pub overrides: OverrideArgs,
}

// Arguments of `features` (its help text is the doc comment of `Command::…`).
#[derive(Debug, Args)]
pub struct FeaturesArgs {
    /// Grid file or name.
    pub grid: String,
    /// Also write each entry as NumPy arrays into DIR: `<backbone>-<dataset>-<split>.npy`
    /// (N × D float32, the images in dataset order) and `<dataset>-<split>-labels.npy` (N
    /// int64, −1 where unlabelled) — for `dataset.name: embeddings`, or any other tool.
    #[arg(long, value_name = "DIR")]
    pub export: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub overrides: OverrideArgs,
}

// Arguments of `verify` (its help text is the doc comment of `Command::…`).
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Grid file, experiments/ name or stored grid name (default: every grid of the store).
    pub grid: Option<String>,
    /// Set damaged runs and checkpoints aside, rewrite the index, remove leftovers.
    #[arg(long)]
    pub repair: bool,
}

// Arguments of `reproduce` (its help text is the doc comment of `Command::…`).
#[derive(Debug, Args)]
pub struct ReproduceArgs {
    /// Run id (as listed by `sweep --dry-run` or `status`).
    pub run: String,
    /// Scratch directory for the re-run (default: a fresh temporary directory).
    #[arg(long)]
    pub scratch: Option<std::path::PathBuf>,
}

// Arguments of `diff` (its help text is the doc comment of `Command::…`).
#[derive(Debug, Args)]
pub struct DiffArgs {
    pub run_a: String,
    pub run_b: String,
}

// Arguments of `predict` (its help text is the doc comment of `Command::…`).
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Run id of a completed run (any grid of the store).
    pub run: String,
    /// Image files and folders.
    #[arg(required = true, num_args = 1..)]
    pub images: Vec<std::path::PathBuf>,
    /// Parquet file to write (atomically).
    #[arg(long, default_value = "predictions.parquet")]
    pub out: std::path::PathBuf,
    /// Folder for one contact sheet PNG per cluster.
    #[arg(long, value_name = "DIR")]
    pub sheets: Option<std::path::PathBuf>,
}

// Arguments of `runs` (its help text is the doc comment of `Command::…`).
#[derive(Debug, Args)]
pub struct RunsArgs {
    /// Grid file, experiments/ name or stored grid name.
    pub grid: String,
    #[arg(long = "where", value_name = "COND")]
    pub conditions: Vec<String>,
}

// Arguments of `sql` (its help text is the doc comment of `Command::…`).
#[derive(Debug, Args)]
pub struct SqlArgs {
    pub query: String,
}

// Arguments of `report` (its help text is the doc comment of `Command::…`).
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Grid file, experiments/ name or stored grid name.
    pub grid: String,
    /// Which epoch's scores: `reported` (the epoch each run's `eval.epoch` names: final,
    /// lowest_loss or best_by_label), `final` (the last evaluated one), `best` (each run's
    /// best-NMI epoch) or `best:acc` / `best:ari` (best by that metric; all scores at that
    /// epoch). Epochs chosen with the labels are marked † in every table. Default: the grid's
    /// `report.epoch`, else reported.
    #[arg(long)]
    pub epoch: Option<String>,
    /// Row keys, comma-separated result columns (default: the grid's `report.rows`, else
    /// method.name + the other varying keys).
    #[arg(long, value_delimiter = ',')]
    pub rows: Option<Vec<String>>,
    /// Column-group keys, comma-separated (default: the grid's `report.columns`, else
    /// dataset.name + varying dataset.* keys);
    /// each group shows NMI, ACC and ARI.
    #[arg(long, value_delimiter = ',')]
    pub columns: Option<Vec<String>>,
}

// Arguments of `bench` (its help text is the doc comment of `Command::…`).
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchWhat,
}

// Arguments of `slurm` (its help text is the doc comment of `Command::…`).
#[derive(Debug, Args)]
pub struct SlurmArgs {
    /// Grid file or name.
    pub grid: String,
    /// Print the sbatch script(s) and submit nothing (writes nothing).
    #[arg(long)]
    pub print: bool,
    /// Also submit `clusterlab report GRID` to run after the array (afterany).
    #[arg(long)]
    pub report: bool,
    /// Include cells whose last run failed (skipped by default, as in `sweep`).
    #[arg(long)]
    pub rerun_failed: bool,
    #[command(flatten)]
    pub resources: SlurmResourceArgs,
    #[command(flatten)]
    pub overrides: OverrideArgs,
}

// Arguments of `k8s` (its help text is the doc comment of `Command::…`).
#[derive(Debug, Args)]
pub struct K8sArgs {
    /// Grid file or name.
    pub grid: String,
    /// Write the YAML to this file (atomically) instead of stdout.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Include cells whose last run failed.
    #[arg(long)]
    pub rerun_failed: bool,
    #[command(flatten)]
    pub settings: K8sJobArgs,
    #[command(flatten)]
    pub overrides: OverrideArgs,
}

// Arguments of `data` (its help text is the doc comment of `Command::…`).
#[derive(Debug, Args)]
pub struct DataArgs {
    #[command(subcommand)]
    pub what: DataWhat,
}

// Arguments of `ui` (its help text is the doc comment of `Command::…`).
#[derive(Debug, Args)]
pub struct UiArgs {
    /// Port to listen on (0: a free one, printed at start).
    #[arg(long, default_value_t = 8787)]
    pub port: u16,
    /// Listen on this address instead of 127.0.0.1 (e.g. 0.0.0.0 for every interface); every
    /// request then needs the random token printed at start.
    #[arg(long, value_name = "IP")]
    pub host: Option<String>,
}

// Arguments of `golden` (its help text is the doc comment of `Command::…`).
#[derive(Debug, Args)]
pub struct GoldenArgs {
    /// Case files, or folders of *.json cases.
    #[arg(required = true)]
    pub paths: Vec<std::path::PathBuf>,
}

/// Config overrides applied on top of every cell (highest precedence).
#[derive(Debug, Args, Clone, Default)]
pub struct OverrideArgs {
    /// Override a run-config key for every cell: --set optimizer.lr=1e-3 (repeatable).
    /// Environment variables CLUSTERLAB_<SECTION>__<KEY> apply below --set. A comma outside
    /// brackets and quotes sweeps: --set seed=0,1,2 adds (or replaces) the axis `seed`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}

/// What `bench` measures.
#[derive(Debug, Subcommand)]
pub enum BenchWhat {
    /// Timed training steps (after warm-up) on random inputs of the configured size.
    Train {
        /// Timed steps.
        #[arg(long, default_value_t = 10)]
        steps: usize,
        /// Untimed warm-up steps.
        #[arg(long, default_value_t = 2)]
        warmup: usize,
        /// Take the base config of this grid (file or name); the first cell's config is used.
        #[arg(long)]
        grid: Option<String>,
        /// Method (same as --set method.name=M).
        #[arg(long)]
        method: Option<String>,
        /// Backbone: cnn, resnet18, resnet34 (same as --set model.backbone=B).
        #[arg(long)]
        backbone: Option<String>,
        /// ResNet stem: cifar or imagenet (same as --set model.stem=S).
        #[arg(long)]
        stem: Option<String>,
        /// Images per step (same as --set train.batch_size=N).
        #[arg(long)]
        batch: Option<usize>,
        /// Image side in pixels (same as --set dataset.image_size=S).
        #[arg(long)]
        image_size: Option<usize>,
        #[command(flatten)]
        overrides: OverrideArgs,
    },
    /// Report speed on a synthetic store (runs × epochs rows) built in a temporary folder.
    Report {
        /// Runs in the synthetic store.
        #[arg(long, default_value_t = 5000)]
        runs: usize,
        /// Epoch rows per run.
        #[arg(long, default_value_t = 200)]
        epochs: usize,
        /// Also time the whole report folder (tables, figures from every run's epochs, index):
        /// first with no report cache, then again.
        #[arg(long)]
        figures: bool,
        /// Where to build the store (default: a fresh temporary folder, removed afterwards).
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
    /// Our kernels on --device against our CPU kernels, op by op (forward and every gradient,
    /// seeded inputs): the worst relative difference per op against the tests' tolerance, and
    /// "ok". Run it first on a new GPU; on the CPU, CLUSTERLAB_KERNELS=emulated (a cuda-emu
    /// build) checks the CPU build of our CUDA kernels.
    Kernels,
    /// Head training on precomputed features: N × D seeded vectors (K Gaussian clusters),
    /// TEMI, TURTLE and SCAN at their published schedules (batch, lr), timed per step after
    /// one warm-up step, and k-means timed whole; per method seconds per step and per epoch,
    /// samples/s and the whole schedule extrapolated (neighbour mining included).
    Heads {
        /// Number of feature vectors.
        #[arg(long, default_value_t = 50_000)]
        n: usize,
        /// Their dimension.
        #[arg(long, default_value_t = 768)]
        dim: usize,
        /// Clusters K.
        #[arg(long, default_value_t = 10)]
        k: usize,
        /// Timed steps per method.
        #[arg(long, default_value_t = 5)]
        steps: usize,
        /// Methods, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "kmeans,temi,turtle,scan")]
        methods: Vec<String>,
    },
    /// Augmentation throughput of the training view pipeline.
    Augment {
        /// Timed batches.
        #[arg(long, default_value_t = 50)]
        batches: usize,
        /// Take the base config of this grid (file or name); the first cell's config is used.
        #[arg(long)]
        grid: Option<String>,
        #[command(flatten)]
        overrides: OverrideArgs,
    },
}

/// sbatch resources of `clusterlab slurm`; each overrides the grid's `slurm:` key.
#[derive(Debug, Args, Clone, Default)]
pub struct SlurmResourceArgs {
    /// --partition of every task.
    #[arg(long)]
    pub partition: Option<String>,
    /// --account to charge.
    #[arg(long)]
    pub account: Option<String>,
    /// --gres per task, e.g. gpu:1.
    #[arg(long)]
    pub gres: Option<String>,
    /// --cpus-per-task.
    #[arg(long)]
    pub cpus_per_task: Option<u32>,
    /// --mem per task, e.g. 16G.
    #[arg(long)]
    pub mem: Option<String>,
    /// --time limit per task, e.g. 12:00:00.
    #[arg(long)]
    pub time: Option<String>,
    /// At most N cells at once (the array's %N throttle; default: all).
    #[arg(long, value_name = "N")]
    pub max_parallel: Option<usize>,
    /// Seconds before the time limit at which a task is told to checkpoint (USR1; default 300).
    #[arg(long, value_name = "SECS")]
    pub signal_before: Option<u32>,
}

impl SlurmResourceArgs {
    /// As a `slurm:` section, for layering over the grid's.
    pub fn to_spec(&self) -> clusterlab::config::launcher::SlurmSpec {
        clusterlab::config::launcher::SlurmSpec {
            partition: self.partition.clone(),
            account: self.account.clone(),
            gres: self.gres.clone(),
            cpus_per_task: self.cpus_per_task,
            mem: self.mem.clone(),
            time: self.time.clone(),
            max_parallel: self.max_parallel,
            signal_before_s: self.signal_before,
        }
    }
}

/// Indexed Job settings of `clusterlab k8s`; each overrides the grid's `k8s:` key.
#[derive(Debug, Args, Clone, Default)]
pub struct K8sJobArgs {
    /// Container image holding the clusterlab binary.
    #[arg(long)]
    pub image: Option<String>,
    /// Namespace of the Job.
    #[arg(long)]
    pub namespace: Option<String>,
    /// Pods at once (default: all cells).
    #[arg(long)]
    pub parallelism: Option<usize>,
    /// Retries of one cell before it counts as failed (default 3).
    #[arg(long)]
    pub backoff_limit_per_index: Option<u32>,
    /// CPU request and limit, e.g. 8.
    #[arg(long)]
    pub cpu: Option<String>,
    /// Memory request and limit, e.g. 32Gi.
    #[arg(long)]
    pub memory: Option<String>,
    /// nvidia.com/gpu limit.
    #[arg(long)]
    pub gpu: Option<u32>,
    /// Working directory in the container (default /workspace).
    #[arg(long)]
    pub workdir: Option<String>,
    /// PersistentVolumeClaim mounted at the working directory (the shared run store).
    #[arg(long)]
    pub pvc: Option<String>,
}

impl K8sJobArgs {
    /// As a `k8s:` section, for layering over the grid's.
    pub fn to_spec(&self) -> clusterlab::config::launcher::K8sSpec {
        clusterlab::config::launcher::K8sSpec {
            image: self.image.clone(),
            namespace: self.namespace.clone(),
            parallelism: self.parallelism,
            backoff_limit_per_index: self.backoff_limit_per_index,
            cpu: self.cpu.clone(),
            memory: self.memory.clone(),
            gpu: self.gpu,
            workdir: self.workdir.clone(),
            pvc: self.pvc.clone(),
        }
    }
}

/// What `data` does.
#[derive(Debug, Subcommand)]
pub enum DataWhat {
    /// Known datasets: protocol, where their files are looked for, found or not, checksums.
    List,
    /// Read a dataset through the real loader (checksums, counts, sizes, label ranges) and
    /// summarise it; exit 2 with the problem when it is missing or corrupt.
    Check {
        /// Dataset name (see `data list`).
        name: String,
        /// Folder or archive to read instead of the data root's (dataset.path).
        #[arg(long)]
        path: Option<PathBuf>,
        /// Accept subsets of the official files (no count or checksum checks).
        #[arg(long)]
        allow_partial: bool,
        /// Number of classes (`folder` and `arrays` only; others have a fixed count).
        #[arg(long)]
        num_classes: Option<usize>,
        /// Image side after resizing (image-folder datasets).
        #[arg(long, default_value_t = 32)]
        image_size: usize,
        /// Splits to read, comma-separated (default: the papers' protocol).
        #[arg(long, value_delimiter = ',')]
        splits: Vec<String>,
    },
    /// Download a dataset's official files into the data root, with a progress bar, resume of
    /// an interrupted download, MD5 verification and an atomic rename.
    Fetch {
        /// Dataset name (see `data list`).
        name: String,
        /// Download from this URL instead of the official one (a mirror; single-file datasets).
        #[arg(long)]
        url: Option<String>,
        /// Expected MD5 instead of the published one (with --url, for a mirror's own file).
        #[arg(long)]
        md5: Option<String>,
    },
}
