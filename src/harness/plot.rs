//! The failover picture: acknowledged writes per 100 ms of each client through each fault, the
//! fault and the promotion marked, errors as crosses (one per client and 100 ms in which it saw
//! any, on a row of its own below zero) — one SVG, one panel per fault, drawn with plotters (text
//! is left to the SVG viewer's fonts).

use std::path::Path;

use plotters::prelude::*;

use super::{RoundReport, Timeline};

/// Colours of the clients, in the order they first appear.
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Draws `rounds` — for each fault, one report per client from the same run — into an SVG at
/// `path`. The promotion line is the first report's (measured once per round, independently of
/// the clients).
pub fn failover_svg(path: &Path, rounds: &[(String, Vec<RoundReport>)]) -> anyhow::Result<()> {
    let panels = rounds.len().max(1);
    let height = u32::try_from(panels).unwrap_or(1).saturating_mul(300);
    let root = SVGBackend::new(path, (960, height)).into_drawing_area();
    root.fill(&WHITE).map_err(drawing)?;
    let mut clients: Vec<&str> = Vec::new();
    for (_, reports) in rounds {
        for r in reports {
            if !clients.contains(&r.client.as_str()) {
                clients.push(&r.client);
            }
        }
    }
    let colour = |client: &str| {
        let i = clients.iter().position(|c| *c == client).unwrap_or(0);
        PALETTE[i % PALETTE.len()]
    };
    for ((fault, reports), area) in rounds.iter().zip(root.split_evenly((panels, 1))) {
        let (x0, x1) = span(reports.iter().map(|r| &r.timeline));
        let per_second = |n: u32| f64::from(n) / Timeline::BIN.as_secs_f64();
        let y1 = reports
            .iter()
            .flat_map(|r| r.timeline.acks.iter().copied())
            .map(per_second)
            .fold(1.0_f64, f64::max)
            * 1.15;
        // One row of error marks per client under the axis.
        let row = y1 * 0.035;
        #[allow(clippy::cast_precision_loss, reason = "a handful of clients")]
        let y0 = -row * (clients.len() as f64 + 0.5);
        let mut chart = ChartBuilder::on(&area)
            .caption(
                format!("{fault}: acknowledged writes per second, per 100 ms"),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(56)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(drawing)?;
        chart
            .configure_mesh()
            .x_desc("seconds from the fault")
            .y_desc("writes/s")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| if *y < 0.0 { String::new() } else { format!("{y:.0}") })
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(drawing)?;
        let promotion = reports.first().and_then(|r| r.promotion_s);
        let markers = [
            Some((0.0, "fault", BLACK.stroke_width(2))),
            promotion.map(|p| (p, "new primary accepts writes", BLACK.mix(0.5).stroke_width(2))),
        ];
        for (x, label, style) in markers.into_iter().flatten() {
            chart
                .draw_series(LineSeries::new([(x, 0.0), (x, y1)], style))
                .map_err(drawing)?
                .label(label)
                .legend(move |(lx, ly)| PathElement::new([(lx, ly), (lx + 16, ly)], style));
        }
        for r in reports {
            let c = colour(&r.client);
            let t = &r.timeline;
            let points = t.acks.iter().enumerate().map(|(i, n)| {
                #[allow(clippy::cast_precision_loss, reason = "bin indexes are small")]
                let x = t.start_s + (i as f64 + 0.5) * Timeline::BIN.as_secs_f64();
                (x, per_second(*n))
            });
            chart
                .draw_series(LineSeries::new(points, c.stroke_width(2)))
                .map_err(drawing)?
                .label(format!("{} ({} errors)", r.client, r.timeline.errors_s.len()))
                .legend(move |(lx, ly)| PathElement::new([(lx, ly), (lx + 16, ly)], c.stroke_width(3)));
            let k = clients.iter().position(|n| *n == r.client).unwrap_or(0);
            #[allow(clippy::cast_precision_loss, reason = "a handful of clients")]
            let y = -row * (k as f64 + 1.0);
            let errors = error_bins(&t.errors_s)
                .into_iter()
                .map(|x| Cross::new((x, y), 3, c.stroke_width(1)));
            chart.draw_series(errors).map_err(drawing)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()
            .map_err(drawing)?;
    }
    root.present().map_err(drawing)?;
    Ok(())
}

/// The middle of each 100 ms bin with at least one error, so that thousands of errors in a
/// second draw as ten marks.
fn error_bins(errors_s: &[f64]) -> Vec<f64> {
    let bin = Timeline::BIN.as_secs_f64();
    #[allow(clippy::cast_possible_truncation, reason = "seconds from the fault, in bins")]
    let mut bins: Vec<i64> = errors_s.iter().map(|s| (s / bin).floor() as i64).collect();
    bins.sort_unstable();
    bins.dedup();
    #[allow(clippy::cast_precision_loss, reason = "bin numbers are small")]
    bins.into_iter().map(|b| (b as f64 + 0.5) * bin).collect()
}

/// The time range every timeline covers (at least the second before the fault and the one
/// after).
fn span<'a>(timelines: impl Iterator<Item = &'a Timeline>) -> (f64, f64) {
    timelines.fold((-1.0, 1.0), |(lo, hi), t| {
        #[allow(clippy::cast_precision_loss, reason = "bin counts are small")]
        let end = t.start_s + t.acks.len() as f64 * Timeline::BIN.as_secs_f64();
        (lo.min(t.start_s), hi.max(end))
    })
}

fn drawing<E: std::error::Error + Send + Sync + 'static>(e: DrawingAreaErrorKind<E>) -> anyhow::Error {
    anyhow::anyhow!("drawing the failover picture: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(client: &str, acks: Vec<u32>, errors_s: Vec<f64>) -> RoundReport {
        RoundReport {
            client: client.into(),
            fault: "kill-9-leader".into(),
            promotion_s: Some(1.0),
            write_gap_s: 1.0,
            gap_minus_promotion_s: Some(0.0),
            errors_surfaced: errors_s.len() as u64,
            reads_standby: 0,
            reads_primary: 0,
            stale_reads: 0,
            stale_samples: Vec::new(),
            heartbeats_lost: 0,
            writes_acked: acks.iter().map(|n| u64::from(*n)).sum(),
            acked_writes_lost: 0,
            ops_stuck: 0,
            error_samples: Vec::new(),
            primary_before: None,
            primary_after: None,
            timeline: Timeline {
                start_s: -1.0,
                acks,
                errors_s,
            },
        }
    }

    #[test]
    fn draws_every_client_the_fault_the_promotion_and_the_errors() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("failover.svg");
        let rounds = vec![(
            "kill-9-leader".to_owned(),
            vec![
                report("pgha-client", vec![10, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 10], vec![]),
                report(
                    "plain pool",
                    vec![10, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                    vec![0.2, 0.5, 0.9],
                ),
            ],
        )];
        failover_svg(&path, &rounds).expect("draws");
        let svg = std::fs::read_to_string(&path).expect("written");
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        for text in [
            "pgha-client (0 errors)",
            "plain pool (3 errors)",
            "new primary accepts writes",
            "kill-9-leader",
        ] {
            assert!(svg.contains(text), "no {text:?} in the picture");
        }
        // One polyline per client and per marker line.
        assert!(svg.matches("<polyline").count() >= 4, "{svg}");
    }

    #[test]
    fn errors_are_marked_once_per_100_ms() {
        let marks: Vec<i64> = error_bins(&[0.01, 0.02, 0.09, 0.15, -0.05])
            .iter()
            .map(|x| (x * 100.0).round() as i64)
            .collect();
        assert_eq!(marks, [-5, 5, 15]);
    }
}
