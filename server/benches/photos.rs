//! Photo intake and thumbnail cost against a plain full decode of the same JPEG with `image`
//! (the baseline, measured in the same run because the machines are shared and noisy).
//!
//! ```text
//! cargo bench --bench photos
//! ```
//!
//! Intake = SHA-256 + format sniff + header dimensions + EXIF + 1/8-scale luma decode +
//! perceptual hash: everything the server does to a new photo before storing it. The photos are
//! synthetic village scenes (about 280 KB at 1600×1200 and 1.6 MB at 4000×3000, quality 85).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use taizhang::domain::PhotoFormat;
use taizhang::photos::intake::{analyze, sha256_hex};
use taizhang::photos::synthetic::{jpeg, with_exif, ExifSpec, Scene};
use taizhang::photos::thumbnail;

const MAX_PIXELS: u64 = 50_000_000;

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

fn bench(c: &mut Criterion) {
    for (width, height) in [(1600u32, 1200u32), (4000, 3000)] {
        let bytes = photo(width, height);
        let sha = sha256_hex(&bytes);
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
            b.iter(|| analyze(bytes, &sha, PhotoFormat::Jpeg, MAX_PIXELS).expect("valid"))
        });
        group.bench_with_input(BenchmarkId::new("thumbnail", &label), &bytes, |b, bytes| {
            b.iter(|| thumbnail::make(bytes, PhotoFormat::Jpeg, 1, MAX_PIXELS).expect("thumbnail"))
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
