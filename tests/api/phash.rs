//! Robustness of the perceptual hash, measured on synthetic village photographs: edits of a
//! photo (re-encoded at quality 60, resized to half, cropped 5 %, brightened 10 %) must stay
//! within the reuse threshold of their source; distinct photos — other scenes, and the same
//! scene shot from a step to the side — must stay beyond it.

use image::{imageops, RgbImage};
use taizhang::photos::phash::{self, distance};
use taizhang::photos::{decode, REUSE_THRESHOLD};
use taizhang::simulate::photos::{jpeg, Scene};

const SCENES: [u64; 8] = [11, 22, 33, 44, 55, 66, 77, 88];
const WIDTH: u32 = 800;
const HEIGHT: u32 = 600;
/// A step to the side (about 0.7 m) photographing a house a few metres away: the nearest
/// objects move 15 % of the frame width, the far ones a little.
const STEP: f64 = 0.15;

fn hashes(jpeg_bytes: &[u8]) -> (u64, u64) {
    let frame = decode::inspect(jpeg_bytes).expect("a JPEG");
    let luma = decode::luma_for_hash(jpeg_bytes, &frame).expect("decodes");
    let grid = phash::grid(&luma, 1);
    (phash::dhash(&grid), phash::phash(&grid))
}

fn edits(img: &RgbImage) -> Vec<(&'static str, Vec<u8>)> {
    let (w, h) = img.dimensions();
    let crop_x = w * 25 / 1000;
    let crop_y = h * 25 / 1000;
    let cropped =
        imageops::crop_imm(img, crop_x, crop_y, w - 2 * crop_x, h - 2 * crop_y).to_image();
    let mut bright = img.clone();
    for p in bright.pixels_mut() {
        for c in p.0.iter_mut() {
            *c = (f32::from(*c) * 1.1).min(255.0) as u8;
        }
    }
    vec![
        ("quality 60", jpeg(img, 60)),
        (
            "half size",
            jpeg(
                &imageops::resize(img, w / 2, h / 2, imageops::FilterType::Triangle),
                85,
            ),
        ),
        ("cropped 5 %", jpeg(&cropped, 85)),
        ("brightened 10 %", jpeg(&bright, 85)),
    ]
}

#[test]
fn edits_stay_within_the_threshold_and_distinct_photos_beyond_it() {
    let mut same = Vec::new();
    let mut distinct = Vec::new();
    let mut sources = Vec::new();
    let mut report = String::new();
    for seed in SCENES {
        let scene = Scene::new(seed);
        let img = scene.render(WIDTH, HEIGHT, 0.0);
        let source = hashes(&jpeg(&img, 85));
        for (name, bytes) in edits(&img) {
            let h = hashes(&bytes);
            report += &format!(
                "scene {seed} {name:<16} dhash {:>2}  phash {:>2}\n",
                distance(source.0, h.0),
                distance(source.1, h.1)
            );
            same.push((distance(source.0, h.0), distance(source.1, h.1)));
        }
        let step = hashes(&jpeg(&scene.render(WIDTH, HEIGHT, STEP), 85));
        report += &format!(
            "scene {seed} {:<16} dhash {:>2}  phash {:>2}\n",
            "a step aside",
            distance(source.0, step.0),
            distance(source.1, step.1)
        );
        distinct.push((distance(source.0, step.0), distance(source.1, step.1)));
        sources.push(source);
    }
    for i in 0..sources.len() {
        for j in i + 1..sources.len() {
            distinct.push((
                distance(sources[i].0, sources[j].0),
                distance(sources[i].1, sources[j].1),
            ));
        }
    }
    let pairs = |d: &[(u32, u32)], f: fn(&(u32, u32)) -> u32| {
        let mut v: Vec<u32> = d.iter().map(f).collect();
        v.sort();
        v
    };
    report += &format!(
        "edits dhash {:?}\nedits phash {:?}\ndistinct dhash {:?}\ndistinct phash {:?}\n",
        pairs(&same, |d| d.0),
        pairs(&same, |d| d.1),
        pairs(&distinct, |d| d.0),
        pairs(&distinct, |d| d.1)
    );
    let max_same = same
        .iter()
        .fold((0, 0), |m, d| (m.0.max(d.0), m.1.max(d.1)));
    let min_distinct = distinct
        .iter()
        .fold((64, 64), |m, d| (m.0.min(d.0), m.1.min(d.1)));
    report += &format!(
        "edits: max dhash {} phash {}; distinct: min dhash {} phash {}\n",
        max_same.0, max_same.1, min_distinct.0, min_distinct.1
    );
    println!("{report}");
    let false_matches = distinct.iter().filter(|d| d.1 <= REUSE_THRESHOLD).count();
    let misses = same.iter().filter(|d| d.1 > REUSE_THRESHOLD).count();
    assert_eq!(
        (misses, false_matches),
        (0, 0),
        "threshold {REUSE_THRESHOLD}:\n{report}"
    );
}
