//! The report's charts, as SVG (plotters' SVG backend alone: no font files, no bitmap
//! code — the viewer renders the text): one panel per shape, one horizontal band per
//! strategy (and per limit), labelled with the strategy's name.
//!
//! - `throughput.svg` — median requests per second, the limits in grey;
//! - `latency.svg` — p50, p99 and max on a log scale;
//! - `fraction.svg` — each strategy's throughput as a share of the HTTP ceiling and of the
//!   hot-row SQL loop.

use std::path::Path;

use anyhow::anyhow;
use plotters::{
    prelude::*,
    style::text_anchor::{HPos, Pos, VPos},
};

use super::results::Comparison;
use crate::figures::num;

/// The files written, with their titles.
pub const FILES: [(&str, &str); 3] = [
    ("throughput.svg", "Throughput (median round, requests/s)"),
    ("latency.svg", "Latency (median round, ms, log scale)"),
    ("fraction.svg", "Share of the limits (median round)"),
];

const WIDTH: u32 = 1100;
const LABEL_WIDTH: i32 = 330;
const BAND: u32 = 26;
const BLUE: RGBColor = RGBColor(31, 119, 180);
const ORANGE: RGBColor = RGBColor(255, 127, 14);
const GREEN: RGBColor = RGBColor(44, 160, 44);
const RED: RGBColor = RGBColor(214, 39, 40);
const GREY: RGBColor = RGBColor(150, 150, 150);

/// How values map onto the x axis.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Axis {
    Linear,
    /// Plotted as log10, labelled with the value.
    Log,
}

struct Series {
    name: String,
    color: RGBColor,
    values: Vec<Option<f64>>,
}

struct Panel {
    title: String,
    labels: Vec<String>,
    series: Vec<Series>,
    axis: Axis,
    x_desc: String,
}

/// Draws the three charts into `folder`.
///
/// # Errors
///
/// A file that cannot be written.
pub fn draw(comparison: &Comparison, folder: &Path) -> anyhow::Result<()> {
    let [(throughput, t1), (latency, t2), (fraction, t3)] = FILES;
    render(&folder.join(throughput), t1, &throughput_panels(comparison))?;
    render(&folder.join(latency), t2, &latency_panels(comparison))?;
    render(&folder.join(fraction), t3, &fraction_panels(comparison))?;
    Ok(())
}

fn row_labels(c: &Comparison, shape: &str) -> Vec<String> {
    c.rows.iter().filter(|r| r.shape == shape).map(|r| r.label.clone()).collect()
}

fn throughput_panels(c: &Comparison) -> Vec<Panel> {
    c.shapes
        .iter()
        .map(|shape| {
            let limits: Vec<_> = c.limits.iter().filter(|l| l.shape == shape.name).collect();
            let rows: Vec<_> = c.rows.iter().filter(|r| r.shape == shape.name).collect();
            let mut labels: Vec<String> = limits.iter().map(|l| l.label.clone()).collect();
            labels.extend(rows.iter().map(|r| r.label.clone()));
            let n = labels.len();
            let mut limit = vec![None; n];
            let mut safe = vec![None; n];
            let mut unsafe_ = vec![None; n];
            for (i, l) in limits.iter().enumerate() {
                limit[i] = Some(l.median.rps);
            }
            for (i, r) in rows.iter().enumerate() {
                let slot = if r.safe { &mut safe } else { &mut unsafe_ };
                slot[limits.len() + i] = Some(r.median.rps);
            }
            Panel {
                title: shape.description.clone(),
                labels,
                series: vec![
                    Series { name: "limit".into(), color: GREY, values: limit },
                    Series { name: "strategy".into(), color: BLUE, values: safe },
                    Series { name: "not safe here".into(), color: RED, values: unsafe_ },
                ],
                axis: Axis::Linear,
                x_desc: "requests/s".into(),
            }
        })
        .collect()
}

fn latency_panels(c: &Comparison) -> Vec<Panel> {
    c.shapes
        .iter()
        .map(|shape| {
            let rows: Vec<_> = c.rows.iter().filter(|r| r.shape == shape.name).collect();
            let pick = |f: fn(&super::results::RowResult) -> f64| rows.iter().map(|r| Some(f(r))).collect();
            Panel {
                title: shape.description.clone(),
                labels: row_labels(c, &shape.name),
                series: vec![
                    Series { name: "p50".into(), color: BLUE, values: pick(|r| r.median.p50_ms) },
                    Series { name: "p99".into(), color: ORANGE, values: pick(|r| r.median.p99_ms) },
                    Series { name: "max".into(), color: RED, values: pick(|r| r.median.max_ms) },
                ],
                axis: Axis::Log,
                x_desc: "ms".into(),
            }
        })
        .collect()
}

fn fraction_panels(c: &Comparison) -> Vec<Panel> {
    c.shapes
        .iter()
        .map(|shape| {
            let rows: Vec<_> = c.rows.iter().filter(|r| r.shape == shape.name).collect();
            Panel {
                title: shape.description.clone(),
                labels: row_labels(c, &shape.name),
                series: vec![
                    Series {
                        name: "of the HTTP ceiling".into(),
                        color: GREEN,
                        values: rows.iter().map(|r| r.of_http.map(|f| f * 100.0)).collect(),
                    },
                    Series {
                        name: "of the hot-row SQL loop".into(),
                        color: ORANGE,
                        values: rows.iter().map(|r| r.of_sql.map(|f| f * 100.0)).collect(),
                    },
                ],
                axis: Axis::Linear,
                x_desc: "% of the limit".into(),
            }
        })
        .collect()
}

fn panel_height(panel: &Panel) -> u32 {
    let per_band = BAND * u32::try_from(panel.series.len().clamp(1, 2)).unwrap_or(2);
    90 + per_band * u32::try_from(panel.labels.len().max(1)).unwrap_or(1)
}

fn render(path: &Path, title: &str, panels: &[Panel]) -> anyhow::Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    let height = 50 + panels.iter().map(panel_height).sum::<u32>();
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let body = root.titled(title, ("sans-serif", 22)).map_err(|e| err(&e))?;
    let mut top = 0;
    for panel in panels {
        let h = i32::try_from(panel_height(panel)).unwrap_or(i32::MAX);
        let (area, _) = body.split_vertically(top + h);
        let area = area.split_vertically(top).1;
        top += h;
        draw_panel(&root, &area, panel).map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// An axis tick: whole numbers without decimals.
fn tick(x: f64) -> String {
    if (x - x.round()).abs() < 1e-6 && x.abs() < 100.0 { format!("{}", x.round() as i64) } else { num(x) }
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

// Long on purpose: one chart panel drawn top to bottom (axes, hand-placed labels, bands, figures);
// plotters' builder calls read best in the order they draw.
fn draw_panel(root: &Area<'_>, area: &Area<'_>, panel: &Panel) -> Result<(), Box<dyn std::error::Error>> {
    let n = panel.labels.len();
    let values = panel.series.iter().flat_map(|s| s.values.iter().flatten().copied());
    let (lo, hi) = values.fold((f64::MAX, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (x_min, x_max) = match panel.axis {
        Axis::Linear => (0.0, (hi * 1.12).max(1.0)),
        Axis::Log => {
            let lo = if lo == f64::MAX { 0.1 } else { lo.max(0.01) };
            (lo.log10().floor(), hi.max(lo * 10.0).log10().ceil() + 0.1)
        }
    };
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 16))
        .margin(8)
        .margin_left(LABEL_WIDTH)
        .x_label_area_size(36)
        .build_cartesian_2d(x_min..x_max, -0.6f64..(n as f64 - 0.4))?;
    let axis = panel.axis;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_labels(8)
        .x_desc(panel.x_desc.as_str())
        .x_label_formatter(&|x| match axis {
            Axis::Linear => tick(*x),
            Axis::Log => tick(10f64.powf(*x)),
        })
        .draw()?;
    // Labels by hand, right-aligned beside their band, so every name shows whatever tick
    // spacing plotters would pick.
    let style = TextStyle::from(("sans-serif", 13).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
    for (k, label) in panel.labels.iter().enumerate() {
        let y = (n - 1 - k) as f64;
        let (x0, py) = chart.backend_coord(&(x_min, y));
        root.draw(&Text::new(label.clone(), (x0 - 8, py), style.clone()))?;
    }
    // Each band is shared by the series that have a value for that label.
    let present: Vec<usize> = (0..n)
        .map(|k| panel.series.iter().filter(|s| s.values.get(k).copied().flatten().is_some()).count())
        .collect();
    for series in &panel.series {
        let mut bars = Vec::new();
        for (k, value) in series.values.iter().enumerate() {
            let Some(value) = value else { continue };
            let slot = panel
                .series
                .iter()
                .take_while(|s| !std::ptr::eq(*s, series))
                .filter(|s| s.values.get(k).copied().flatten().is_some())
                .count();
            let width = 0.8 / present[k].max(1) as f64;
            let top = (n - 1 - k) as f64 + 0.4 - slot as f64 * width;
            let x = match axis {
                Axis::Linear => *value,
                Axis::Log => value.max(10f64.powf(x_min)).log10(),
            };
            bars.push(Rectangle::new(
                [(x_min, top), (x.max(x_min), top - width * 0.92)],
                series.color.filled(),
            ));
            // the figure itself at the end of its bar
            let (px, py) = chart.backend_coord(&(x.max(x_min), top - width * 0.46));
            let value_style =
                TextStyle::from(("sans-serif", 11).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
            root.draw(&Text::new(num(*value), (px + 4, py), value_style))?;
        }
        let color = series.color;
        if bars.is_empty() {
            continue;
        }
        chart
            .draw_series(bars)?
            .label(series.name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::{
        compare::results::{LimitResult, Machine, Round, RowResult, ShapeInfo},
        deploy::Check,
        figures::Figures,
    };

    fn figures(rps: f64) -> Figures {
        Figures { requests: 100, rps, p50_ms: 20.0, p99_ms: 80.0, max_ms: 95.0, ..Figures::default() }
    }

    fn comparison() -> Comparison {
        let shape = ShapeInfo {
            name: "team".into(),
            description: "the team's scenario".into(),
            requests: 100,
            copies: 10,
            concurrency: 100,
            events: 1,
        };
        let row = |label: &str, safe: bool, rps: f64| RowResult {
            label: label.into(),
            strategy: label.split(' ').next().unwrap_or_default().into(),
            variant: String::new(),
            partitions: None,
            shape: "team".into(),
            safe,
            median: figures(rps),
            check: Check::default(),
            broken_rounds: 0,
            contract_broken_rounds: 0,
            violations: BTreeMap::new(),
            rounds: vec![Round { figures: figures(rps), check: Check::default() }],
            of_http: Some(rps / 5000.0),
            of_sql: Some(rps / 2000.0),
            model_bound: None,
        };
        let limit = |kind: &str, rps: f64| LimitResult {
            limit: kind.into(),
            label: kind.into(),
            shape: "team".into(),
            median: figures(rps),
            rounds: vec![figures(rps)],
        };
        Comparison {
            started_at: "now".into(),
            seconds: 1.0,
            command: "nanum compare".into(),
            machine: Machine { cores: 2, memory_gib: 24.0, build: "release".into() },
            database: "mariadb".into(),
            redis: true,
            kafka: false,
            topology: "1 × all".into(),
            network: crate::compare::model::NetworkInfo::default(),
            rounds: 1,
            settings: Vec::new(),
            shapes: vec![shape],
            limits: vec![limit("http-ceiling", 5000.0), limit("hot-row-sql", 2000.0)],
            rows: vec![
                row("none", false, 900.0),
                row("pessimistic-lock", true, 1000.0),
                row("pessimistic-lock (shortcut off)", true, 800.0),
                row("redis-atomic", true, 2500.0),
            ],
            skipped: Vec::new(),
            notes: Vec::new(),
        }
    }

    #[test]
    fn every_chart_is_svg_that_names_every_row() {
        let dir = std::env::temp_dir().join(format!("nanum-charts-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let c = comparison();
        draw(&c, &dir).unwrap();
        for (file, title) in FILES {
            let svg = std::fs::read_to_string(dir.join(file)).unwrap();
            let doc = roxmltree::Document::parse(&svg).unwrap();
            assert_eq!(doc.root_element().tag_name().name(), "svg");
            let texts: Vec<_> = doc.descendants().filter_map(|n| n.text()).map(str::trim).collect();
            assert!(texts.contains(&title), "{file}: title");
            for row in &c.rows {
                assert!(texts.contains(&row.label.as_str()), "{file} does not name {}", row.label);
            }
        }
        let throughput = std::fs::read_to_string(dir.join("throughput.svg")).unwrap();
        assert!(
            throughput.contains("http-ceiling") && throughput.contains("2,500"),
            "limits and values shown"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
