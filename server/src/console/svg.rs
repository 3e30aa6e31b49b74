//! Maps and charts drawn as inline SVG from the server's own data: no tile server, no script
//! library, nothing loaded from outside the server.

use maud::{html, Markup};

use super::layout::number;

/// A geofence to draw: GeoJSON `Polygon` or `MultiPolygon` coordinates (`[lon, lat]`).
pub struct Fence<'a> {
    pub name: &'a str,
    pub geometry: &'a serde_json::Value,
    /// The village the page is about (drawn strong); neighbours are drawn faint.
    pub focus: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Where a survey was made.
    Survey,
    /// An accepted check-in.
    Accepted,
    /// A flagged check-in.
    Flagged,
    /// A village's reference position.
    Village,
}

impl Mark {
    fn class(self) -> &'static str {
        match self {
            Mark::Survey => "pt survey",
            Mark::Accepted => "pt accepted",
            Mark::Flagged => "pt flagged",
            Mark::Village => "pt village",
        }
    }
}

pub struct Point {
    pub lat: f64,
    pub lon: f64,
    pub label: String,
    pub mark: Mark,
    /// Drawn as a circle around the point, in metres.
    pub accuracy_m: Option<f64>,
}

/// Rings of `(lon, lat)` points, the first the outer boundary, the others holes.
type Polygon = Vec<Vec<(f64, f64)>>;

/// Polygons → rings → `[lon, lat]` points, from GeoJSON; anything else is skipped.
fn polygons(geometry: &serde_json::Value) -> Vec<Polygon> {
    let ring = |r: &serde_json::Value| -> Vec<(f64, f64)> {
        r.as_array()
            .map(|pts| {
                pts.iter()
                    .filter_map(|p| Some((p.get(0)?.as_f64()?, p.get(1)?.as_f64()?)))
                    .collect()
            })
            .unwrap_or_default()
    };
    let polygon = |p: &serde_json::Value| -> Polygon {
        p.as_array()
            .map(|rings| rings.iter().map(ring).collect())
            .unwrap_or_default()
    };
    let coords = &geometry["coordinates"];
    match geometry["type"].as_str() {
        Some("Polygon") => vec![polygon(coords)],
        Some("MultiPolygon") => coords
            .as_array()
            .map(|ps| ps.iter().map(polygon).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

const METRES_PER_DEGREE: f64 = 111_320.0;

/// An equirectangular projection around a latitude: at a village's scale (a few km) it is
/// as good as any, and it needs no projection library.
struct Frame {
    lon0: f64,
    lat0: f64,
    cos: f64,
    /// SVG units per metre.
    scale: f64,
    width: f64,
    height: f64,
}

impl Frame {
    /// Frames a bounding box (lon/lat) into `width` SVG units, with a margin.
    fn new(min: (f64, f64), max: (f64, f64), width: f64, height: f64) -> Frame {
        let lat_mid = (min.1 + max.1) / 2.0;
        let cos = lat_mid.to_radians().cos().max(0.01);
        let span_x = ((max.0 - min.0) * cos * METRES_PER_DEGREE).max(200.0);
        let span_y = ((max.1 - min.1) * METRES_PER_DEGREE).max(200.0);
        let scale = (width / (span_x * 1.25)).min(height / (span_y * 1.25));
        let centre = ((min.0 + max.0) / 2.0, lat_mid);
        Frame {
            lon0: centre.0,
            lat0: centre.1,
            cos,
            scale,
            width,
            height,
        }
    }

    fn xy(&self, lon: f64, lat: f64) -> (f64, f64) {
        let x = (lon - self.lon0) * self.cos * METRES_PER_DEGREE * self.scale + self.width / 2.0;
        let y = (self.lat0 - lat) * METRES_PER_DEGREE * self.scale + self.height / 2.0;
        (x, y)
    }
}

/// A round scale-bar length (metres) about a fifth of the map's width.
fn scale_bar(frame: &Frame) -> (f64, String) {
    let target = frame.width / 5.0 / frame.scale;
    let steps = [
        50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10_000.0, 20_000.0, 50_000.0,
    ];
    let metres = steps
        .iter()
        .copied()
        .rfind(|s| *s <= target)
        .unwrap_or(steps[0]);
    let label = if metres >= 1000.0 {
        format!("{} 公里", metres / 1000.0)
    } else {
        format!("{metres} 米")
    };
    (metres * frame.scale, label)
}

/// The map of a village: its geofence, its neighbours' (clipped to the frame) and the points.
/// The frame fits the focus geofence and the points, so a far-off point shows how far off it is.
pub fn map(fences: &[Fence], points: &[Point], caption: &str) -> Markup {
    let (width, height) = (640.0, 420.0);
    let mut min = (f64::INFINITY, f64::INFINITY);
    let mut max = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    let mut include = |lon: f64, lat: f64| {
        min = (min.0.min(lon), min.1.min(lat));
        max = (max.0.max(lon), max.1.max(lat));
    };
    let drawn: Vec<(&Fence, Vec<Polygon>)> =
        fences.iter().map(|f| (f, polygons(f.geometry))).collect();
    for (fence, polys) in &drawn {
        if fence.focus {
            for &(lon, lat) in polys.iter().flatten().flatten() {
                include(lon, lat);
            }
        }
    }
    for p in points {
        include(p.lon, p.lat);
    }
    if !min.0.is_finite() {
        return html! { p.muted { "没有可绘制的位置。" } };
    }
    let frame = Frame::new(min, max, width, height);
    let path = |polys: &[Polygon]| -> String {
        let mut d = String::new();
        for ring in polys.iter().flatten() {
            for (i, &(lon, lat)) in ring.iter().enumerate() {
                let (x, y) = frame.xy(lon, lat);
                d.push_str(&format!("{}{x:.1},{y:.1} ", if i == 0 { 'M' } else { 'L' }));
            }
            d.push_str("Z ");
        }
        d
    };
    let (bar, bar_label) = scale_bar(&frame);
    html! {
        figure.map {
            svg xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (width) " " (height) }
                role="img" aria-label=(caption) {
                rect.sea x="0" y="0" width=(width) height=(height) {}
                @for (fence, polys) in drawn.iter().filter(|(f, _)| !f.focus) {
                    path.fence.neighbour d=(path(polys)) fill-rule="evenodd" { title { (fence.name) } }
                }
                @for (fence, polys) in drawn.iter().filter(|(f, _)| f.focus) {
                    path.fence.focus d=(path(polys)) fill-rule="evenodd" { title { (fence.name) } }
                }
                @for p in points {
                    @let (x, y) = frame.xy(p.lon, p.lat);
                    g class=(p.mark.class()) {
                        title { (p.label) }
                        @if let Some(acc) = p.accuracy_m {
                            circle.accuracy cx=(format!("{x:.1}")) cy=(format!("{y:.1}"))
                                r=(format!("{:.1}", (acc * frame.scale).max(1.0))) {}
                        }
                        circle.dot cx=(format!("{x:.1}")) cy=(format!("{y:.1}")) r="5" {}
                        @if p.mark == Mark::Village {
                            text x=(format!("{:.1}", x + 7.0)) y=(format!("{:.1}", y + 4.0)) { (p.label) }
                        }
                    }
                }
                g.scale {
                    line x1="16" y1=(height - 18.0) x2=(16.0 + bar) y2=(height - 18.0) {}
                    text x="16" y=(height - 24.0) { (bar_label) }
                }
            }
            figcaption { (caption) }
        }
    }
}

/// One bar of a chart: a label, a value, and optionally a second, larger value drawn behind it
/// (figures including surveys still awaiting review behind the approved ones).
pub struct Bar<'a> {
    pub label: &'a str,
    pub value: i64,
    pub behind: Option<i64>,
    pub href: Option<String>,
}

/// A horizontal bar chart.
pub fn bars(bars: &[Bar], caption: &str) -> Markup {
    let row = 26.0;
    let label_w = 230.0;
    let plot_w = 360.0;
    let width = label_w + plot_w + 90.0;
    let height = row * bars.len() as f64 + 10.0;
    let top = bars
        .iter()
        .map(|b| b.value.max(b.behind.unwrap_or(0)))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let w = |v: i64| (v.max(0) as f64 / top * plot_w).max(if v > 0 { 1.0 } else { 0.0 });
    html! {
        figure.chart {
            svg xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (width) " " (height) }
                role="img" aria-label=(caption) {
                @for (i, b) in bars.iter().enumerate() {
                    @let y = 5.0 + row * i as f64;
                    g.bar {
                        title { (b.label) "：" (number(b.value)) @if let Some(p) = b.behind { "（含待审 " (number(p)) "）" } }
                        @if let Some(href) = &b.href {
                            a href=(href) {
                                text.label x=(label_w - 8.0) y=(y + 17.0) { (b.label) }
                            }
                        } @else {
                            text.label x=(label_w - 8.0) y=(y + 17.0) { (b.label) }
                        }
                        @if let Some(p) = b.behind {
                            rect.pending x=(label_w) y=(y + 3.0) width=(format!("{:.1}", w(p))) height=(row - 8.0) {}
                        }
                        rect.approved x=(label_w) y=(y + 3.0) width=(format!("{:.1}", w(b.value))) height=(row - 8.0) {}
                        text.value x=(format!("{:.1}", label_w + w(b.value.max(b.behind.unwrap_or(0))) + 6.0)) y=(y + 17.0) {
                            (number(b.value))
                        }
                    }
                }
            }
            figcaption { (caption) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_polygons_and_multipolygons() {
        let poly = serde_json::json!({"type": "Polygon", "coordinates": [[[1.0, 2.0], [3.0, 4.0], [1.0, 2.0]]]});
        assert_eq!(
            polygons(&poly),
            vec![vec![vec![(1.0, 2.0), (3.0, 4.0), (1.0, 2.0)]]]
        );
        let multi = serde_json::json!({"type": "MultiPolygon", "coordinates": [
            [[[1.0, 2.0], [3.0, 4.0], [1.0, 2.0]]], [[[5.0, 6.0], [7.0, 8.0], [5.0, 6.0]]]]});
        assert_eq!(polygons(&multi).len(), 2);
        assert!(polygons(&serde_json::json!({"type": "Point"})).is_empty());
    }

    #[test]
    fn frame_keeps_north_up_and_the_box_inside() {
        let frame = Frame::new((122.0, 45.0), (122.1, 45.1), 640.0, 420.0);
        let (x0, y0) = frame.xy(122.0, 45.0);
        let (x1, y1) = frame.xy(122.1, 45.1);
        assert!(x1 > x0 && y1 < y0, "east is right, north is up");
        for (x, y) in [(x0, y0), (x1, y1)] {
            assert!((0.0..=640.0).contains(&x) && (0.0..=420.0).contains(&y));
        }
    }

    #[test]
    fn a_map_escapes_names_and_draws_every_point() {
        let fence = serde_json::json!({"type": "Polygon", "coordinates": [[[122.0, 45.0], [122.01, 45.0], [122.01, 45.01], [122.0, 45.0]]]});
        let html = map(
            &[Fence {
                name: "<平安村>",
                geometry: &fence,
                focus: true,
            }],
            &[
                Point {
                    lat: 45.005,
                    lon: 122.005,
                    label: "a".into(),
                    mark: Mark::Survey,
                    accuracy_m: Some(30.0),
                },
                Point {
                    lat: 45.2,
                    lon: 122.3,
                    label: "b".into(),
                    mark: Mark::Flagged,
                    accuracy_m: None,
                },
            ],
            "地图",
        )
        .into_string();
        assert!(html.contains("&lt;平安村&gt;") && !html.contains("<平安村>"));
        assert_eq!(html.matches("class=\"dot\"").count(), 2);
    }
}
