//! Decompression bombs (issue 14, finding 2): a 48 KB grey PNG of 49,999,999 × 1 pixels was
//! accepted after 6–8 s of CPU and about 1 GB of memory. Every bomb below — PNG, WebP, JPEG
//! baseline and progressive, many scans, headers claiming huge or thin frames — is refused
//! before any pixel is decoded; eight at once against a real `taizhang serve` cost it less than
//! 50 MB of memory and 50 ms of CPU each. Real photos, baseline and progressive, still pass.

use std::time::Duration;

use reqwest::{Client, Response};
use reqwest_middleware::ClientWithMiddleware;
use serde_json::Value;
use taizhang::simulate::photos::{
    claim_size, flat_jpeg, jpeg, progressive_jpeg, with_frame_marker, with_repeated_scan, Scene,
};

use crate::helpers::*;

fn encode(image: impl Into<image::DynamicImage>, format: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image.into().write_to(&mut out, format).expect("encode");
    out.into_inner()
}

/// The bomb of the finding: a grey PNG of 49,999,999 × 1 pixels (236 KB as `image` writes it;
/// the finding's, better compressed, was 48 KB).
fn png_strip() -> Vec<u8> {
    encode(
        image::GrayImage::new(49_999_999, 1),
        image::ImageFormat::Png,
    )
}

/// A bad upload: what it is, its bytes and content type, the status and rule expected.
struct Bomb {
    what: &'static str,
    bytes: Vec<u8>,
    content_type: &'static str,
    status: u16,
    rule: Option<&'static str>,
}

fn bomb(
    what: &'static str,
    bytes: Vec<u8>,
    content_type: &'static str,
    status: u16,
    rule: Option<&'static str>,
) -> Bomb {
    Bomb {
        what,
        bytes,
        content_type,
        status,
        rule,
    }
}

/// The eight costliest bombs, one of each kind, as the concurrent test sends them.
fn eight_bombs() -> Vec<Bomb> {
    let strip = png_strip();
    let scene =
        progressive_jpeg(&Scene::new(31).render(800, 600, 0.0), 85, false).expect("progressive");
    vec![
        bomb("49,999,999×1 PNG", strip.clone(), "image/png", 415, None),
        bomb(
            "49,999,999×1 PNG sent as JPEG",
            strip,
            "image/jpeg",
            422,
            Some("format_mismatch"),
        ),
        bomb(
            "7071×7071 PNG",
            encode(image::GrayImage::new(7071, 7071), image::ImageFormat::Png),
            "image/png",
            415,
            None,
        ),
        bomb(
            "7071×7071 WebP",
            encode(image::GrayImage::new(7071, 7071), image::ImageFormat::WebP),
            "image/webp",
            415,
            None,
        ),
        bomb(
            "flat 50 MP baseline JPEG",
            flat_jpeg(8192, 6100, false).expect("jpeg"),
            "image/jpeg",
            422,
            Some("implausible_compression"),
        ),
        bomb(
            "flat 50 MP progressive JPEG",
            flat_jpeg(7071, 7071, true).expect("jpeg"),
            "image/jpeg",
            422,
            Some("implausible_compression"),
        ),
        bomb(
            "progressive JPEG with 1000 scans",
            with_repeated_scan(&scene, 1000),
            "image/jpeg",
            422,
            Some("too_many_scans"),
        ),
        // libjpeg would allocate the whole 50 MP coefficient buffer (150 MB) before reading a
        // scan.
        bomb(
            "progressive JPEG claiming 8160×6120",
            claim_size(&scene, 8160, 6120),
            "image/jpeg",
            422,
            Some("decode_memory"),
        ),
    ]
}

/// Every other rule, each with the cheapest input that breaks it.
fn more_bombs() -> Vec<Bomb> {
    let small = jpeg(&Scene::new(32).render(64, 48, 0.0), 85);
    vec![
        bomb(
            "WebP sent as JPEG",
            encode(image::GrayImage::new(64, 48), image::ImageFormat::WebP),
            "image/jpeg",
            422,
            Some("format_mismatch"),
        ),
        bomb(
            "JPEG claiming 60000×60000",
            photo_fixture("bomb.jpg"),
            "image/jpeg",
            422,
            Some("too_many_pixels"),
        ),
        bomb(
            "JPEG claiming 65500×1, the strip as far as JPEG goes",
            claim_size(&small, 65_500, 1),
            "image/jpeg",
            422,
            Some("side_too_long"),
        ),
        bomb(
            "JPEG claiming 65500×700",
            claim_size(&small, 65_500, 700),
            "image/jpeg",
            422,
            Some("side_too_long"),
        ),
        bomb(
            "JPEG claiming 12000×1000",
            claim_size(&small, 12_000, 1000),
            "image/jpeg",
            422,
            Some("aspect_ratio"),
        ),
        bomb(
            "lossless JPEG (SOF3)",
            with_frame_marker(&small, 0xC3),
            "image/jpeg",
            422,
            Some("unsupported_jpeg"),
        ),
        bomb(
            "arithmetic-coded JPEG (SOF9)",
            with_frame_marker(&small, 0xC9),
            "image/jpeg",
            422,
            Some("unsupported_jpeg"),
        ),
        bomb(
            "JPEG with 33 scans",
            with_repeated_scan(&small, 32),
            "image/jpeg",
            422,
            Some("too_many_scans"),
        ),
    ]
}

async fn put(client: &ClientWithMiddleware, address: &str, token: &str, bomb: &Bomb) -> Response {
    client
        .put(format!(
            "{address}/api/v1/photos/{}",
            sha256_hex(&bomb.bytes)
        ))
        .bearer_auth(token)
        .header("content-type", bomb.content_type)
        .body(bomb.bytes.clone())
        .send()
        .await
        .expect("upload")
}

/// Checks a refusal: the status, the code, the rule on `body`, a Chinese detail.
async fn refused(response: Response, bomb: &Bomb) {
    let code = match bomb.status {
        415 => "unsupported_media_type",
        _ => "validation_failed",
    };
    let body = problem(response, bomb.status, code).await;
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(
        detail
            .chars()
            .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
        "{}: a Chinese detail: {body}",
        bomb.what
    );
    match bomb.rule {
        Some(rule) => assert_eq!(
            (body["field"].as_str(), body["rule"].as_str()),
            (Some("body"), Some(rule)),
            "{}: {body}",
            bomb.what
        ),
        None => assert!(detail.contains("image/jpeg"), "{}: {body}", bomb.what),
    }
}

async fn every_bomb_is_refused_and_nothing_is_stored(backend: Backend) {
    // Built first: an idle connection would be closed while they are made.
    let bombs: Vec<Bomb> = eight_bombs().into_iter().chain(more_bombs()).collect();
    let app = TestApp::spawn(backend).await;
    let token = app.token(ENUMERATOR_TAOBEI).await;
    for bomb in &bombs {
        let response = put(&app.client, &app.address, &token, bomb).await;
        refused(response, bomb).await;
    }
    for bomb in &bombs {
        let head = app
            .request(
                reqwest::Method::HEAD,
                &format!("/api/v1/photos/{}", sha256_hex(&bomb.bytes)),
            )
            .bearer_auth(&token)
            .send()
            .await
            .expect("head");
        assert_eq!(head.status(), 404, "{} left nothing behind", bomb.what);
    }
    if let taizhang::photos::PhotoStoreConfig::Disk(dir) = &app.settings.photos.store {
        assert!(
            std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_none()),
            "no photo file was written"
        );
    }
}

async fn thumbnail_size(app: &TestApp, token: &str, hash: &str) -> (u32, u32) {
    let thumb = app
        .get_as(token, &format!("/api/v1/photos/{hash}?size=thumb"))
        .await;
    assert_eq!(thumb.status(), 200);
    let thumb = image::load_from_memory(&thumb.bytes().await.expect("bytes")).expect("a JPEG");
    (thumb.width(), thumb.height())
}

/// Phone-size photos, baseline and progressive (as photo apps re-encode), pass at the default
/// limits; the per-image memory limit refuses a progressive one when set low, and a baseline
/// photo of the same size, which decodes at 1/8 scale in little memory, still passes.
async fn phone_photos_pass_and_the_memory_limit_holds(backend: Backend) {
    let scene = Scene::new(33).render(4000, 3000, 0.0);
    let photos = [
        (
            "1600×1200 baseline",
            jpeg(&Scene::new(34).render(1600, 1200, 0.0), 85),
        ),
        ("4000×3000 baseline", jpeg(&scene, 85)),
        (
            "4000×3000 progressive",
            progressive_jpeg(&scene, 85, false).expect("progressive"),
        ),
        (
            "640×480 progressive, optimised scans",
            photo_fixture("progressive.jpg"),
        ),
    ];
    let small = Scene::new(35).render(1600, 1200, 0.0);
    let app = TestApp::spawn(backend).await;
    let token = app.token(ENUMERATOR_TAOBEI).await;
    let mut hashes = Vec::new();
    for (what, bytes) in &photos {
        let bomb = bomb(what, bytes.clone(), "image/jpeg", 201, None);
        let response = put(&app.client, &app.address, &token, &bomb).await;
        assert_eq!(response.status(), 201, "{what}");
        let info: Value = response.json().await.expect("json");
        hashes.push(info["phash"].as_str().expect("phash").to_owned());
        let (w, h) = thumbnail_size(&app, &token, &sha256_hex(bytes)).await;
        assert_eq!(w.max(h), 320, "{what}");
    }
    // The same picture decoded by both paths hashes alike.
    let (baseline, progressive) = (
        u64::from_str_radix(&hashes[1], 16).expect("hex"),
        u64::from_str_radix(&hashes[2], 16).expect("hex"),
    );
    assert!(
        taizhang::photos::phash::distance(baseline, progressive) <= 2,
        "{hashes:?}"
    );

    let strict = TestApp::spawn_with(backend, |s| s.photos.max_decode_bytes = 8 << 20).await;
    let token = strict.token(ENUMERATOR_TAOBEI).await;
    let progressive = bomb(
        "1600×1200 progressive under an 8 MiB limit",
        progressive_jpeg(&small, 85, false).expect("progressive"),
        "image/jpeg",
        422,
        Some("decode_memory"),
    );
    let response = put(&strict.client, &strict.address, &token, &progressive).await;
    refused(response, &progressive).await;
    let baseline = bomb(
        "1600×1200 baseline",
        jpeg(&small, 85),
        "image/jpeg",
        201,
        None,
    );
    let response = put(&strict.client, &strict.address, &token, &baseline).await;
    assert_eq!(response.status(), 201);
}

/// Kilobytes of a `/proc/<pid>/status` line such as `VmHWM:  123456 kB`.
fn status_kb(pid: u32, key: &str) -> u64 {
    taizhang::simulate::bench::status_kib(pid, key).expect("a kB figure")
}

/// User plus system CPU time of a process, in milliseconds.
fn cpu_ms(pid: u32) -> u64 {
    taizhang::simulate::bench::cpu_ms(pid).expect("stat")
}

/// Eight bombs uploaded at once to a real server process: its peak memory grows by less than
/// 50 MB, and it spends less than 50 ms of CPU a bomb. Then a real progressive photo, whose
/// peak memory the decode estimate must cover.
async fn eight_concurrent_bombs_cost_little_memory_and_time(backend: Backend) {
    let sqlite_dir = tempfile::tempdir().expect("dir");
    let url = match backend {
        Backend::Sqlite => sqlite_dir
            .path()
            .join("taizhang.sqlite3")
            .display()
            .to_string(),
        Backend::Postgres => crate::pg::fresh_database(),
    };
    let bombs = eight_bombs();
    let photo =
        progressive_jpeg(&Scene::new(36).render(2400, 1800, 0.0), 85, false).expect("progressive");
    let server = ServerProcess::start(&url);
    let client = crate::helpers::checked_client(Client::builder().timeout(Duration::from_secs(60)));
    let token = log_in(&client, &server.address, ENUMERATOR_TAOBEI).await;
    // Warm up the upload path (connections, thread pools) with one refusal.
    let warm = bomb(
        "warm-up",
        photo_fixture("bomb.jpg"),
        "image/jpeg",
        422,
        None,
    );
    put(&client, &server.address, &token, &warm).await;

    let pid = server.pid();
    // Resets the peak to the current resident size, so the growth is the bombs' alone.
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset VmHWM");
    let resident = status_kb(pid, "VmRSS:");
    let cpu_before = cpu_ms(pid);
    let responses = futures_util::future::join_all(
        bombs
            .iter()
            .map(|bomb| put(&client, &server.address, &token, bomb)),
    )
    .await;
    let cpu = cpu_ms(pid) - cpu_before;
    let growth_kb = status_kb(pid, "VmHWM:").saturating_sub(resident);
    for (response, bomb) in responses.into_iter().zip(&bombs) {
        refused(response, bomb).await;
    }
    let per_bomb = cpu as f64 / bombs.len() as f64;
    println!(
        "{} concurrent bombs ({} KB in all): peak memory grew {:.1} MB, CPU {per_bomb:.1} ms a bomb",
        bombs.len(),
        bombs.iter().map(|b| b.bytes.len()).sum::<usize>() / 1024,
        growth_kb as f64 / 1024.0
    );
    assert!(growth_kb < 50 * 1024, "peak memory grew {growth_kb} kB");
    assert!(per_bomb < 50.0, "{per_bomb} ms of CPU a bomb");

    // For comparison, one progressive phone photo, which libjpeg decodes with its whole
    // coefficient buffer: the estimate the budget reserves must cover what it really takes
    // (beside the body, read and copied).
    let frame = taizhang::photos::decode::inspect(&photo).expect("a JPEG");
    let estimate_kb = frame.decode_bytes(taizhang::photos::decode::Purpose::Hash) / 1024;
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset VmHWM");
    let resident = status_kb(pid, "VmRSS:");
    let cpu_before = cpu_ms(pid);
    let upload = bomb("photo", photo, "image/jpeg", 201, None);
    let response = put(&client, &server.address, &token, &upload).await;
    assert_eq!(response.status(), 201);
    let cpu = cpu_ms(pid) - cpu_before;
    let growth_kb = status_kb(pid, "VmHWM:").saturating_sub(resident);
    println!(
        "one 2400×1800 progressive photo ({} KB): peak memory grew {:.1} MB (estimate {:.1} MB), \
         CPU {cpu} ms",
        upload.bytes.len() / 1024,
        growth_kb as f64 / 1024.0,
        estimate_kb as f64 / 1024.0
    );
    let body_kb = upload.bytes.len() as u64 / 1024;
    assert!(
        growth_kb <= estimate_kb + 3 * body_kb + 8 * 1024,
        "grew {growth_kb} kB, estimated {estimate_kb} kB"
    );
}

both_backends!(
    every_bomb_is_refused_and_nothing_is_stored,
    phone_photos_pass_and_the_memory_limit_holds,
    eight_concurrent_bombs_cost_little_memory_and_time,
);
