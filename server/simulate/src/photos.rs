//! Synthetic village photographs: deterministic scenes (sky, hills, fields, houses with a door
//! plate, trees, sensor noise) rendered at any resolution, optionally from a camera moved
//! sideways with parallax. The photo fixtures, the perceptual-hash robustness tests and the
//! benchmarks are made from them, so no binary test data has to be trusted or downloaded.

use std::io::Cursor;

use image::{Rgb, RgbImage};

use taizhang_core::random::{hash01, SplitMix};

struct House {
    x: f64,
    width: f64,
    height: f64,
    base: f64,
    depth: f64,
    wall: [f64; 3],
    roof: [f64; 3],
    plate: bool,
}

struct Tree {
    x: f64,
    base: f64,
    radius: f64,
    depth: f64,
    leaf: [f64; 3],
}

struct Cloud {
    x: f64,
    y: f64,
    rx: f64,
    ry: f64,
}

/// One scene; render it with [`Scene::render`].
pub struct Scene {
    seed: u64,
    horizon: f64,
    /// Exposure and white balance of the shot.
    exposure: f64,
    sky: [f64; 3],
    hills: [f64; 12],
    field_tint: [f64; 3],
    houses: Vec<House>,
    trees: Vec<Tree>,
    clouds: Vec<Cloud>,
}

fn pick(rng: &mut SplitMix, options: &[[f64; 3]]) -> [f64; 3] {
    options[(rng.next_u64() % options.len() as u64) as usize]
}

impl Scene {
    pub fn new(seed: u64) -> Self {
        let mut rng = SplitMix::new(seed);
        // Camera pitch varies a lot between shots: the horizon anywhere from high to low.
        let horizon = rng.range(0.18, 0.7);
        let exposure = rng.range(0.75, 1.2);
        let sky = pick(
            &mut rng,
            &[
                [80.0, 130.0, 205.0],
                [150.0, 160.0, 170.0],
                [110.0, 150.0, 215.0],
                [190.0, 170.0, 150.0],
            ],
        );
        let mut hills = [0.0; 12];
        for h in &mut hills {
            *h = rng.range(0.02, 0.1);
        }
        let walls = [
            [222.0, 210.0, 185.0],
            [238.0, 238.0, 232.0],
            [176.0, 96.0, 72.0],
            [190.0, 186.0, 178.0],
        ];
        let roofs = [
            [178.0, 52.0, 40.0],
            [52.0, 92.0, 160.0],
            [96.0, 96.0, 100.0],
            [140.0, 70.0, 40.0],
        ];
        let leaves = [[46.0, 96.0, 38.0], [70.0, 120.0, 50.0], [34.0, 80.0, 44.0]];
        let count = 2 + (rng.next_u64() % 5) as usize;
        // Some shots are close-ups of one house (a door plate), others wide views of several.
        let closeness = rng.range(0.6, 2.6);
        let mut houses: Vec<House> = (0..count)
            .map(|i| {
                let base = horizon + rng.range(0.1, 0.95) * (1.0 - horizon);
                let depth = (base - horizon) / (1.0 - horizon);
                House {
                    x: rng.range(-0.05, 1.05),
                    width: rng.range(0.12, 0.3) * (0.4 + depth) * closeness,
                    height: rng.range(0.08, 0.2) * (0.4 + depth) * closeness,
                    base,
                    depth,
                    wall: pick(&mut rng, &walls),
                    roof: pick(&mut rng, &roofs),
                    plate: i == 0,
                }
            })
            .collect();
        houses.sort_by(|a, b| a.depth.total_cmp(&b.depth));
        let mut trees: Vec<Tree> = (0..(4 + rng.next_u64() % 6))
            .map(|_| {
                let base = horizon + rng.range(0.03, 0.5);
                let depth = (base - horizon) / (1.0 - horizon);
                Tree {
                    x: rng.range(-0.05, 1.05),
                    base,
                    radius: rng.range(0.03, 0.06) * (0.4 + depth),
                    depth,
                    leaf: pick(&mut rng, &leaves),
                }
            })
            .collect();
        trees.sort_by(|a, b| a.depth.total_cmp(&b.depth));
        let clouds = (0..(1 + rng.next_u64() % 4))
            .map(|_| Cloud {
                x: rng.range(0.0, 1.0),
                y: rng.range(0.05, horizon - 0.1),
                rx: rng.range(0.06, 0.16),
                ry: rng.range(0.02, 0.05),
            })
            .collect();
        Self {
            seed,
            horizon,
            exposure,
            sky,
            hills,
            field_tint: [
                rng.range(-20.0, 20.0),
                rng.range(-10.0, 25.0),
                rng.range(-15.0, 10.0),
            ],
            houses,
            trees,
            clouds,
        }
    }

    fn hill_height(&self, x: f64) -> f64 {
        let t = (x.rem_euclid(1.0)) * (self.hills.len() - 1) as f64;
        let i = t.floor() as usize;
        let f = t - i as f64;
        let f = f * f * (3.0 - 2.0 * f);
        self.hills[i] * (1.0 - f) + self.hills[(i + 1).min(self.hills.len() - 1)] * f
    }

    /// The colour seen at normalised position (x, y), x across the frame, y down, for a camera
    /// moved sideways by `shift` (a fraction of the frame width; near things move most).
    fn colour(&self, x: f64, y: f64, shift: f64) -> [f64; 3] {
        let at = |depth: f64| x + shift * depth;
        let mut c;
        if y < self.horizon {
            let t = y / self.horizon;
            c = [
                self.sky[0] + 100.0 * t,
                self.sky[1] + 70.0 * t,
                self.sky[2] + 25.0 * t,
            ];
            for cloud in &self.clouds {
                let dx = (at(0.05) - cloud.x) / cloud.rx;
                let dy = (y - cloud.y) / cloud.ry;
                let d = dx * dx + dy * dy;
                if d < 1.0 {
                    let a = (1.0 - d).min(0.6) / 0.6;
                    c = [
                        c[0] + (245.0 - c[0]) * a,
                        c[1] + (245.0 - c[1]) * a,
                        c[2] + (248.0 - c[2]) * a,
                    ];
                }
            }
            if y > self.horizon - self.hill_height(at(0.15)) {
                c = [96.0, 118.0, 112.0];
            }
        } else {
            let depth = (y - self.horizon) / (1.0 - self.horizon);
            let fx = at(depth);
            // Field rows recede towards the horizon; alternate crops by band.
            let band = ((fx * 6.0 + (1.0 / (depth + 0.05)) * 0.8).floor() as i64).rem_euclid(3);
            c = match band {
                0 => [92.0, 142.0, 60.0],
                1 => [132.0, 160.0, 70.0],
                _ => [150.0, 120.0, 80.0],
            };
            let rows = ((1.0 / (depth + 0.04)) * 14.0).sin() * 12.0 * depth;
            for (ch, tint) in c.iter_mut().zip(self.field_tint) {
                *ch += tint + rows;
            }
        }
        // Nearer things hide farther ones: paint houses and trees together, far to near.
        let (mut h, mut t) = (0, 0);
        while h < self.houses.len() || t < self.trees.len() {
            let house_next = t >= self.trees.len()
                || (h < self.houses.len() && self.houses[h].depth <= self.trees[t].depth);
            if house_next {
                let house = &self.houses[h];
                h += 1;
                let hx = at(house.depth) - house.x;
                let half = house.width / 2.0;
                let top = house.base - house.height;
                let roof_top = top - house.height * 0.55;
                if hx.abs() < half && y <= house.base && y >= top {
                    c = house.wall;
                    let col = ((hx + half) / house.width * 5.0).floor() as i64;
                    let row = (y - top) / house.height;
                    if col % 2 == 1 && (0.25..0.6).contains(&row) {
                        c = [40.0, 60.0, 90.0];
                    }
                    if col == 2 && row > 0.45 {
                        c = [110.0, 60.0, 30.0];
                        if house.plate && (0.3..0.42).contains(&row) {
                            let mark = ((hx + half) / house.width * 40.0).floor() as i64 % 3 == 0;
                            c = if mark {
                                [250.0, 250.0, 250.0]
                            } else {
                                [20.0, 70.0, 170.0]
                            };
                        }
                    }
                } else if y < top && y >= roof_top {
                    let spread = half * 1.15 * (y - roof_top) / (top - roof_top);
                    if hx.abs() < spread {
                        c = house.roof;
                    }
                }
            } else {
                let tree = &self.trees[t];
                t += 1;
                let tx = at(tree.depth) - tree.x;
                let cy = tree.base - tree.radius * 2.2;
                let d = (tx * tx * 1.8 + (y - cy) * (y - cy)).sqrt();
                if d < tree.radius {
                    let shade = 1.0 - 0.35 * (tx / tree.radius + 0.4).clamp(0.0, 1.0);
                    c = [
                        tree.leaf[0] * shade,
                        tree.leaf[1] * shade,
                        tree.leaf[2] * shade,
                    ];
                } else if tx.abs() < tree.radius * 0.15 && y > cy && y < tree.base {
                    c = [88.0, 62.0, 40.0];
                }
            }
        }
        c
    }

    /// Renders the scene at `width`×`height` from a camera moved sideways by `shift`.
    pub fn render(&self, width: u32, height: u32, shift: f64) -> RgbImage {
        let mut img = RgbImage::new(width, height);
        let (w, h) = (f64::from(width), f64::from(height));
        for (px, py, pixel) in img.enumerate_pixels_mut() {
            let x = (f64::from(px) + 0.5) / w;
            let y = (f64::from(py) + 0.5) / h;
            let c = self.colour(x, y, shift).map(|v| v * self.exposure);
            // Sensor noise.
            let grain = (hash01(self.seed, u64::from(px), u64::from(py)) - 0.5) * 14.0;
            *pixel = Rgb([
                (c[0] + grain).clamp(0.0, 255.0) as u8,
                (c[1] + grain).clamp(0.0, 255.0) as u8,
                (c[2] + grain).clamp(0.0, 255.0) as u8,
            ]);
        }
        img
    }
}

/// Encodes an image as a baseline JPEG at `quality`.
pub fn jpeg(img: &RgbImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality);
    // Encoding into memory cannot fail for a valid RGB image.
    let _ = encoder.encode_image(img);
    out
}

/// EXIF to embed in a synthetic photo.
pub struct ExifSpec<'a> {
    /// `YYYY:MM:DD HH:MM:SS`, local time.
    pub taken_at: &'a str,
    /// e.g. `+08:00`.
    pub offset: &'a str,
    pub lat: f64,
    pub lon: f64,
    pub orientation: u16,
}

fn rational(value: f64) -> Vec<exif::Rational> {
    let degrees = value.abs().floor();
    let minutes = ((value.abs() - degrees) * 60.0).floor();
    let seconds = ((value.abs() - degrees) * 60.0 - minutes) * 60.0;
    vec![
        exif::Rational {
            num: degrees as u32,
            denom: 1,
        },
        exif::Rational {
            num: minutes as u32,
            denom: 1,
        },
        exif::Rational {
            num: (seconds * 10_000.0).round() as u32,
            denom: 10_000,
        },
    ]
}

/// Inserts an EXIF APP1 segment right after the JPEG's SOI marker.
pub fn with_exif(jpeg: &[u8], spec: &ExifSpec<'_>) -> Vec<u8> {
    use exif::{Field, In, Tag, Value};
    let ascii = |s: &str| Value::Ascii(vec![s.as_bytes().to_vec()]);
    let fields = [
        Field {
            tag: Tag::Make,
            ifd_num: In::PRIMARY,
            value: ascii("Taizhang"),
        },
        Field {
            tag: Tag::Model,
            ifd_num: In::PRIMARY,
            value: ascii("synthetic village camera"),
        },
        Field {
            tag: Tag::Orientation,
            ifd_num: In::PRIMARY,
            value: Value::Short(vec![spec.orientation]),
        },
        Field {
            tag: Tag::DateTimeOriginal,
            ifd_num: In::PRIMARY,
            value: ascii(spec.taken_at),
        },
        Field {
            tag: Tag::OffsetTimeOriginal,
            ifd_num: In::PRIMARY,
            value: ascii(spec.offset),
        },
        Field {
            tag: Tag::GPSLatitudeRef,
            ifd_num: In::PRIMARY,
            value: ascii(if spec.lat < 0.0 { "S" } else { "N" }),
        },
        Field {
            tag: Tag::GPSLatitude,
            ifd_num: In::PRIMARY,
            value: Value::Rational(rational(spec.lat)),
        },
        Field {
            tag: Tag::GPSLongitudeRef,
            ifd_num: In::PRIMARY,
            value: ascii(if spec.lon < 0.0 { "W" } else { "E" }),
        },
        Field {
            tag: Tag::GPSLongitude,
            ifd_num: In::PRIMARY,
            value: Value::Rational(rational(spec.lon)),
        },
    ];
    let mut writer = exif::experimental::Writer::new();
    for field in &fields {
        writer.push_field(field);
    }
    let mut tiff = Cursor::new(Vec::new());
    // Writing well-formed fields into memory cannot fail; an empty block is still a valid JPEG.
    let _ = writer.write(&mut tiff, false);
    let tiff = tiff.into_inner();
    let mut segment = b"Exif\0\0".to_vec();
    segment.extend_from_slice(&tiff);
    let length = (segment.len() + 2) as u16;
    let mut out = Vec::with_capacity(jpeg.len() + segment.len() + 4);
    out.extend_from_slice(&jpeg[..2]);
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&segment);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// Encodes an image as a progressive JPEG at `quality`: MozJPEG's own defaults (trellis
/// quantisation, optimised scans) when `optimised`, else libjpeg's standard progression (10
/// scans), which is much faster for large pictures.
pub fn progressive_jpeg(img: &RgbImage, quality: u8, optimised: bool) -> std::io::Result<Vec<u8>> {
    let mut compress = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_RGB);
    if !optimised {
        compress.set_fastest_defaults();
    }
    compress.set_size(img.width() as usize, img.height() as usize);
    compress.set_quality(f32::from(quality));
    compress.set_progressive_mode();
    let mut started = compress.start_compress(Vec::new())?;
    started.write_scanlines(img.as_raw())?;
    started.finish()
}

/// A JPEG of one flat grey, `width`×`height`, written a few rows at a time so even 50
/// megapixels need no picture in memory: a decompression bomb of a few hundred KB (baseline)
/// or a few KB (progressive).
pub fn flat_jpeg(width: u32, height: u32, progressive: bool) -> std::io::Result<Vec<u8>> {
    let mut compress = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_GRAYSCALE);
    compress.set_fastest_defaults();
    compress.set_size(width as usize, height as usize);
    compress.set_quality(75.0);
    if progressive {
        compress.set_progressive_mode();
    }
    let mut started = compress.start_compress(Vec::new())?;
    let rows = vec![128u8; width as usize * 16];
    let mut left = height as usize;
    while left > 0 {
        let n = left.min(16);
        started.write_scanlines(&rows[..n * width as usize])?;
        left -= n;
    }
    started.finish()
}

/// The offset of a JPEG's frame header marker (SOF0–SOF2), found by walking the segments
/// before the first scan.
fn frame_header(jpeg: &[u8]) -> Option<usize> {
    let mut pos = 2;
    loop {
        let (marker, code) = (*jpeg.get(pos)?, *jpeg.get(pos + 1)?);
        if marker != 0xFF || code == 0xDA {
            return None;
        }
        if (0xC0..=0xC2).contains(&code) {
            return Some(pos);
        }
        let length = usize::from(*jpeg.get(pos + 2)?) << 8 | usize::from(*jpeg.get(pos + 3)?);
        pos += 2 + length;
    }
}

/// Rewrites a JPEG's frame header to claim `width`×`height`: a decompression bomb as far as
/// any header reader can tell (the data still describes the original picture).
pub fn claim_size(jpeg: &[u8], width: u16, height: u16) -> Vec<u8> {
    let mut out = jpeg.to_vec();
    if let Some(at) = frame_header(jpeg) {
        // Marker (2), length (2), precision (1), then height and width.
        out[at + 5..at + 7].copy_from_slice(&height.to_be_bytes());
        out[at + 7..at + 9].copy_from_slice(&width.to_be_bytes());
    }
    out
}

/// Rewrites a JPEG's frame marker (e.g. to SOF3, lossless, or SOF9, arithmetic coding).
pub fn with_frame_marker(jpeg: &[u8], code: u8) -> Vec<u8> {
    let mut out = jpeg.to_vec();
    if let Some(at) = frame_header(jpeg) {
        out[at + 1] = code;
    }
    out
}

/// Repeats a JPEG's smallest scan (its SOS segment and data, with any tables before the next
/// scan) `scans` more times before EOI: a progressive CPU bomb in shape, each scan a pass over
/// the picture.
pub fn with_repeated_scan(jpeg: &[u8], scans: usize) -> Vec<u8> {
    // 0xFF 0xDA occurs only as a scan marker: entropy-coded data stuffs every 0xFF.
    let mut starts: Vec<usize> = jpeg
        .windows(2)
        .enumerate()
        .filter(|(_, w)| *w == [0xFF, 0xDA])
        .map(|(i, _)| i)
        .collect();
    let end = jpeg.len().saturating_sub(2);
    starts.push(end);
    let Some((from, to)) = starts
        .windows(2)
        .map(|w| (w[0], w[1]))
        .min_by_key(|(from, to)| to - from)
    else {
        return jpeg.to_vec();
    };
    let mut out = jpeg[..end].to_vec();
    for _ in 0..scans {
        out.extend_from_slice(&jpeg[from..to]);
    }
    out.extend_from_slice(&jpeg[end..]);
    out
}
