//! Progress on standard error: a bar on a terminal, otherwise one plain line each time
//! another tenth of the work is done, or every 100,000 units when the total is unknown
//! (so logs of long runs show where they are).

use indicatif::{ProgressBar, ProgressStyle};
use parking_lot::Mutex;

/// Progress of one piece of work, in units (rows, bytes, steps).
pub struct Progress {
    bar: ProgressBar,
    /// Set when standard error is not a terminal: the plain-line reporter.
    plain: Option<Mutex<Plain>>,
}

struct Plain {
    what: String,
    unit: &'static str,
    total: u64,
    done: u64,
    /// The next tenth to report (1..=10); with no total, the next multiple of
    /// [`UNTOTALLED_STEP`].
    next_tenth: u64,
}

/// Off a terminal, work of unknown size is reported once per this many units.
const UNTOTALLED_STEP: u64 = 100_000;

impl Plain {
    fn report(&mut self) {
        if self.total == 0 {
            if self.done >= self.next_tenth * UNTOTALLED_STEP {
                eprintln!("{}: {} {}", self.what, self.done, self.unit);
                self.next_tenth = self.done / UNTOTALLED_STEP + 1;
            }
            return;
        }
        let tenth = (self.done.min(self.total) * 10) / self.total;
        if tenth >= self.next_tenth {
            eprintln!(
                "{}: {} of {} {} ({}%)",
                self.what,
                self.done,
                self.total,
                self.unit,
                tenth * 10
            );
            self.next_tenth = tenth + 1;
        }
    }
}

fn template(unit: &str) -> &'static str {
    if unit == "bytes" {
        "{msg:>10} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})"
    } else {
        "{msg:>10} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})"
    }
}

impl Progress {
    fn new(total: u64, what: &str, unit: &'static str) -> Progress {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(template(unit))
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_message(what.to_string());
        let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let plain = (!terminal).then(|| {
            Mutex::new(Plain {
                what: what.to_string(),
                unit,
                total,
                done: 0,
                next_tenth: 1,
            })
        });
        Progress { bar, plain }
    }

    /// Sets the work done so far.
    pub fn set_position(&self, done: u64) {
        self.bar.set_position(done);
        if let Some(p) = &self.plain {
            let mut p = p.lock();
            p.done = done;
            p.report();
        }
    }

    /// Adds to the work done.
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
        if let Some(p) = &self.plain {
            let mut p = p.lock();
            p.done += n;
            p.report();
        }
    }

    /// Changes the total (and, off a terminal, starts counting tenths again).
    pub fn set_length(&self, total: u64) {
        self.bar.set_length(total);
        if let Some(p) = &self.plain {
            let mut p = p.lock();
            if p.total != total {
                p.total = total;
                p.next_tenth = 1;
            }
        }
    }

    /// Renames the work (a new stage); off a terminal, reports the stage once.
    pub fn set_message(&self, what: &str) {
        self.bar.set_message(what.to_string());
        if let Some(p) = &self.plain {
            let mut p = p.lock();
            if p.what != what {
                p.what = what.to_string();
                p.next_tenth = 1;
            }
        }
    }

    /// Removes the bar.
    pub fn finish_and_clear(&self) {
        self.bar.finish_and_clear();
    }
}

/// Progress over `total` items labelled `what`.
pub fn bar(total: u64, what: &str) -> Progress {
    Progress::new(total, what, "steps")
}

/// Progress over `total` rows.
pub fn rows(total: u64, what: &str) -> Progress {
    Progress::new(total, what, "rows")
}

/// Progress over `total` bytes.
pub fn bytes_bar(total: u64, what: &str) -> Progress {
    Progress::new(total, what, "bytes")
}
