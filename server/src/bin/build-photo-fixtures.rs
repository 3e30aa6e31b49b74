//! Writes the photo fixtures to `fixtures/photos/`: small, real-looking JPEGs with EXIF (time,
//! GPS, orientation) rendered from synthetic village scenes, one of them progressive, and the
//! bad inputs the upload must refuse: a truncated JPEG, a JPEG whose header claims 3.6
//! gigapixels, and a text file named `.jpg`. (PNG and WebP are refused whatever they hold; the
//! tests build their own.)
//!
//! ```text
//! cargo run --bin build-photo-fixtures -- [OUT_DIR]      # default: fixtures/photos
//! ```

use std::path::PathBuf;

use anyhow::Context;
use taizhang::simulate::photos::{claim_size, jpeg, progressive_jpeg, with_exif, ExifSpec, Scene};

/// 平安村 (220802100201), where the demo first secretary works.
const LAT: f64 = 45.736537;
const LON: f64 = 122.566161;

fn exif(taken_at: &str, orientation: u16) -> ExifSpec<'_> {
    ExifSpec {
        taken_at,
        offset: "+08:00",
        lat: LAT,
        lon: LON,
        orientation,
    }
}

fn main() -> anyhow::Result<()> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fixtures/photos".into()),
    );
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let write = |name: &str, bytes: &[u8]| {
        std::fs::write(out.join(name), bytes).with_context(|| format!("writing {name}"))
    };

    let doorplate = with_exif(
        &jpeg(&Scene::new(101).render(640, 480, 0.0), 85),
        &exif("2020:07:20 09:31:00", 1),
    );
    write("doorplate.jpg", &doorplate)?;
    let household = Scene::new(202);
    write(
        "household.jpg",
        &with_exif(
            &jpeg(&household.render(640, 480, 0.0), 85),
            &exif("2020:07:20 10:02:45", 1),
        ),
    )?;
    // The same house from a step to the side: a different photo, not a reuse.
    write(
        "household_step.jpg",
        &with_exif(
            &jpeg(&household.render(640, 480, 0.15), 85),
            &exif("2020:07:20 10:02:51", 1),
        ),
    )?;
    write(
        "fields.jpg",
        &with_exif(
            &jpeg(&Scene::new(303).render(640, 480, 0.0), 85),
            &exif("2020:07:21 08:02:11", 1),
        ),
    )?;
    // Stored landscape, shown portrait (EXIF orientation 6: rotate 90° clockwise).
    write(
        "portrait.jpg",
        &with_exif(
            &jpeg(&Scene::new(404).render(480, 360, 0.0), 85),
            &exif("2020:07:21 16:40:00", 6),
        ),
    )?;
    // As photo apps and web tools re-encode: progressive, MozJPEG's optimised scans.
    write(
        "progressive.jpg",
        &with_exif(
            &progressive_jpeg(&Scene::new(505).render(640, 480, 0.0), 85, true)?,
            &exif("2020:07:21 11:15:00", 1),
        ),
    )?;

    write("truncated.jpg", &doorplate[..doorplate.len() * 6 / 10])?;
    let small = jpeg(&Scene::new(707).render(64, 48, 0.0), 85);
    write("bomb.jpg", &claim_size(&small, 60_000, 60_000))?;
    write(
        "not_a_photo.jpg",
        "这不是照片。This is a text file with a .jpg name.\n".as_bytes(),
    )?;
    eprintln!("photo fixtures written to {}", out.display());
    Ok(())
}
