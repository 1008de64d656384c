//! One line per segment build: where it ran and how long each stage took.

use strata::BuildReport;

/// `segment 7: gpu (NVIDIA H200 (sm_90)): k-means 0.52 s, encode 0.10 s, …`, or for a
/// segment too small for an index, `segment 7: no index (exact scan), write 0.01 s`.
pub fn describe(file_no: u64, r: &BuildReport) -> String {
    let stages: Vec<String> = r
        .stages
        .iter()
        .map(|(s, d)| format!("{} {:.2} s", s.name(), d.as_secs_f64()))
        .collect();
    let total: f64 = r.stages.iter().map(|(_, d)| d.as_secs_f64()).sum();
    let place = if !r.indexed {
        "no index (exact scan)".to_string()
    } else {
        let mut p = strata::describe_built_by(r.built_by);
        if let Some(g) = &r.gpu {
            p.push_str(&format!(" ({g})"));
        }
        p
    };
    let mut line = format!(
        "segment {file_no}: {place}: {} = {total:.2} s",
        stages.join(", ")
    );
    if let Some(why) = &r.fallback {
        line.push_str(&format!(" [GPU fell back to the CPU: {why}]"));
    }
    line
}

/// Prints [`describe`] for each report to stderr.
pub fn print_all(reports: &[(u64, BuildReport)]) {
    for (no, r) in reports {
        eprintln!("{}", describe(*no, r));
    }
}
