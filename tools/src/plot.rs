//! `strata bench --plot`: a recall-versus-QPS chart (SVG) of the settings measured.

use std::path::Path;

use anyhow::{Context, Result};
use plotters::prelude::*;

/// One measured setting.
pub struct Point {
    /// Label of the setting (`ef=40 rerank=100`).
    pub label: String,
    /// Recall@k.
    pub recall: f64,
    /// Single-thread queries per second.
    pub qps: f64,
}

/// Writes an SVG chart of QPS (log scale) against recall to `path`.
pub fn recall_qps(path: &Path, title: &str, points: &[Point]) -> Result<()> {
    let root = SVGBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let (rmin, rmax) = points.iter().fold((1.0f64, 0.0f64), |(a, b), p| {
        (a.min(p.recall), b.max(p.recall))
    });
    let (qmin, qmax) = points
        .iter()
        .fold((f64::MAX, 0.0f64), |(a, b), p| (a.min(p.qps), b.max(p.qps)));
    let x0 = (rmin - 0.02).clamp(0.0, 1.0);
    let (y0, y1) = ((qmin * 0.8).max(1.0), (qmax * 1.25).max(2.0));
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..(rmax + 0.005).min(1.0005), (y0..y1).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("recall@k")
        .y_desc("queries per second, one thread (log)")
        .draw()?;
    let mut pts: Vec<(f64, f64)> = points.iter().map(|p| (p.recall, p.qps)).collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    chart
        .draw_series(LineSeries::new(pts.iter().copied(), &BLUE))?
        .label("strata")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart.draw_series(
        points
            .iter()
            .map(|p| Circle::new((p.recall, p.qps), 4, BLUE.filled())),
    )?;
    chart.draw_series(points.iter().map(|p| {
        Text::new(
            p.label.clone(),
            (p.recall, p.qps),
            ("sans-serif", 11).into_font(),
        )
    }))?;
    chart.configure_series_labels().border_style(BLACK).draw()?;
    root.present()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
