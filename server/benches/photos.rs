//! Photo intake and thumbnail cost against a plain full decode of the same JPEG with `image`
//! (the baseline, measured in the same run because the machines are shared and noisy), and the
//! cost of refusing decompression bombs beside them.
//!
//! ```text
//! cargo bench --bench photos
//! ```
//!
//! Intake = SHA-256 + marker walk and limits + EXIF + 1/8-scale luma decode + perceptual hash:
//! everything the server does to a new photo before storing it. The photos are synthetic
//! village scenes (about 280 KB at 1600×1200 and 1.6 MB at 4000×3000, quality 85). Refusing a
//! bomb = SHA-256 + marker walk and limits, no pixel decoded: a flat-grey 50-megapixel JPEG
//! (about 570 KB of scan data to walk) and a 49,999,999 × 1 grey PNG (236 KB as `image`
//! writes it; the finding's was 48 KB).

// Tests and benches fail by panicking: `unwrap` and `expect` are their assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use taizhang::photos::decode::{self, ImageLimits};
use taizhang::photos::intake::{analyze, check, sha256_hex};
use taizhang::photos::thumbnail;
use taizhang::simulate::photos::{flat_jpeg, jpeg, with_exif, ExifSpec, Scene};

const LIMITS: ImageLimits = ImageLimits::DEFAULT;

fn photo(width: u32, height: u32) -> Vec<u8> {
    let exif = ExifSpec {
        taken_at: "2020:07:20 09:31:00",
        offset: "+08:00",
        lat: 45.736537,
        lon: 122.566161,
        orientation: 1,
    };
    with_exif(&jpeg(&Scene::new(7).render(width, height, 0.0), 85), &exif)
}

fn png_strip() -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::GrayImage::new(49_999_999, 1)
        .write_to(&mut out, image::ImageFormat::Png)
        .expect("png");
    out.into_inner()
}

fn bench(c: &mut Criterion) {
    for (width, height) in [(1600u32, 1200u32), (4000, 3000)] {
        let bytes = photo(width, height);
        let sha = sha256_hex(&bytes);
        let frame = decode::inspect(&bytes).expect("a JPEG");
        let label = format!("{width}x{height} ({} KB)", bytes.len() / 1024);
        let mut group = c.benchmark_group("photo");
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.sample_size(if width > 2000 { 20 } else { 60 });
        group.bench_with_input(
            BenchmarkId::new("baseline: image full decode", &label),
            &bytes,
            |b, bytes| b.iter(|| image::load_from_memory(bytes).expect("decodes")),
        );
        group.bench_with_input(BenchmarkId::new("intake", &label), &bytes, |b, bytes| {
            b.iter(|| analyze(bytes, &sha, &LIMITS).expect("valid"))
        });
        group.bench_with_input(BenchmarkId::new("thumbnail", &label), &bytes, |b, bytes| {
            b.iter(|| thumbnail::make(bytes, &frame, 1).expect("thumbnail"))
        });
        group.finish();
    }

    let mut group = c.benchmark_group("bomb");
    let bombs = [
        (
            "refused: flat 50 MP JPEG",
            flat_jpeg(8192, 6100, false).expect("jpeg"),
        ),
        ("refused: 49999999x1 PNG", png_strip()),
    ];
    for (name, bytes) in bombs {
        let sha = sha256_hex(&bytes);
        let label = format!("{} KB", bytes.len() / 1024);
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(BenchmarkId::new(name, &label), &bytes, |b, bytes| {
            b.iter(|| check(bytes, &sha, &LIMITS).expect_err("refused"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
