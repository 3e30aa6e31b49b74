//! Photo intake over HTTP, on both databases and both photo stores.

use reqwest::Method;
use serde_json::Value;

use taizhang::simulate::photos::Scene;

use crate::helpers::*;

async fn upload_is_idempotent_and_describes_the_photo(backend: Backend, store: Store) {
    let app = TestApp::spawn_with_store(backend, store, |_| {}).await;
    let token = app.token(ENUMERATOR_TAOBEI).await;
    let bytes = photo_fixture("doorplate.jpg");
    let hash = sha256_hex(&bytes);
    assert_eq!(app.head_photo(&token, &hash).await, 404);

    let first = app
        .put_photo_as(&token, &hash, bytes.clone(), "image/jpeg")
        .await;
    assert_eq!(first.status(), 201);
    let info: Value = first.json().await.expect("json");
    assert_eq!(info["sha256"], hash.as_str());
    assert_eq!(
        (
            info["format"].as_str(),
            info["width"].as_u64(),
            info["height"].as_u64()
        ),
        (Some("jpeg"), Some(640), Some(480))
    );
    assert_eq!(info["byte_size"], bytes.len());
    assert_eq!(info["taken_at"], "2020-07-20T09:31:00+08:00");
    assert!((info["exif_location"]["lat"].as_f64().expect("lat") - 45.736537).abs() < 1e-4);
    assert!((info["exif_location"]["lon"].as_f64().expect("lon") - 122.566161).abs() < 1e-4);
    assert_eq!(info["phash"].as_str().map(str::len), Some(16));
    assert_eq!(app.head_photo(&token, &hash).await, 200);

    // Again, from the same phone and from a colleague: 200, same description, no new work.
    let again = app
        .put_photo_as(&token, &hash, bytes.clone(), "image/jpeg")
        .await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.expect("json"), info);
    let colleague = app.token(SECRETARY_TAOBEI).await;
    assert_eq!(
        app.put_photo_as(&colleague, &hash, bytes.clone(), "image/jpeg")
            .await
            .status(),
        200
    );

    let full = app.get_as(&token, &format!("/api/v1/photos/{hash}")).await;
    assert_eq!(full.status(), 200);
    assert_eq!(full.headers()["content-type"], "image/jpeg");
    assert_eq!(full.bytes().await.expect("bytes").to_vec(), bytes);

    let thumb = app
        .get_as(&token, &format!("/api/v1/photos/{hash}?size=thumb"))
        .await;
    assert_eq!(thumb.status(), 200);
    let thumb = thumb.bytes().await.expect("bytes").to_vec();
    let decoded = image::load_from_memory(&thumb).expect("thumbnail decodes");
    assert_eq!((decoded.width(), decoded.height()), (320, 240));
    // Made once, then served as stored.
    let second = app
        .get_as(&token, &format!("/api/v1/photos/{hash}?size=thumb"))
        .await
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(second.to_vec(), thumb);
}

async fn thumbnails_apply_orientation(backend: Backend, store: Store) {
    let app = TestApp::spawn_with_store(backend, store, |_| {}).await;
    let token = app.token(SECRETARY_TAOBEI).await;
    let bytes = photo_fixture("portrait.jpg");
    let hash = sha256_hex(&bytes);
    let info: Value = app
        .put_photo_as(&token, &hash, bytes, "image/jpeg")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        (
            info["width"].as_u64(),
            info["height"].as_u64(),
            info["orientation"].as_u64()
        ),
        (Some(480), Some(360), Some(6))
    );
    let thumb = app
        .get_as(&token, &format!("/api/v1/photos/{hash}?size=thumb"))
        .await
        .bytes()
        .await
        .expect("bytes");
    let decoded = image::load_from_memory(&thumb).expect("decodes");
    assert_eq!(
        (decoded.width(), decoded.height()),
        (240, 320),
        "shown upright"
    );
}

/// Only JPEG is taken: PNG and WebP are refused by their content type (415) and, sent as
/// JPEG, by their bytes (422 `format_mismatch`). Their decode memory grows with their pixels,
/// and phones send JPEG.
async fn png_and_webp_are_refused(backend: Backend, store: Store) {
    let app = TestApp::spawn_with_store(backend, store, |_| {}).await;
    let token = app.token(ENUMERATOR_TAOBEI).await;
    let scene = image::DynamicImage::ImageRgb8(Scene::new(505).render(320, 240, 0.0));
    for (format, content_type) in [
        (image::ImageFormat::Png, "image/png"),
        (image::ImageFormat::WebP, "image/webp"),
    ] {
        let mut bytes = std::io::Cursor::new(Vec::new());
        scene.write_to(&mut bytes, format).expect("encode");
        let bytes = bytes.into_inner();
        let hash = sha256_hex(&bytes);
        let body = problem(
            app.put_photo_as(&token, &hash, bytes.clone(), content_type)
                .await,
            415,
            "unsupported_media_type",
        )
        .await;
        assert!(
            body["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("image/jpeg"),
            "{body}"
        );
        let body = problem(
            app.put_photo_as(&token, &hash, bytes, "image/jpeg").await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(body["rule"], "format_mismatch", "{body}");
        assert_eq!(app.head_photo(&token, &hash).await, 404);
    }
}

/// A bad upload: what it is, the hash it is sent under, its bytes and content type, and the
/// status and rule expected.
type BadUpload = (
    &'static str,
    String,
    Vec<u8>,
    &'static str,
    u16,
    Option<&'static str>,
);

/// Every bad upload is refused with its status, and nothing becomes visible.
async fn bad_uploads_are_refused_and_store_nothing(backend: Backend, store: Store) {
    let app = TestApp::spawn_with_store(backend, store, |s| s.photos.max_bytes = 50_000).await;
    let token = app.token(ENUMERATOR_TAOBEI).await;
    let good = photo_fixture("portrait.jpg");
    let mut cases: Vec<BadUpload> = vec![
        (
            "hash mismatch",
            sha256_hex(b"something else"),
            good.clone(),
            "image/jpeg",
            422,
            Some("sha256_mismatch"),
        ),
        (
            "text named .jpg",
            sha256_hex(&photo_fixture("not_a_photo.jpg")),
            photo_fixture("not_a_photo.jpg"),
            "image/jpeg",
            422,
            Some("not_an_image"),
        ),
        (
            "truncated JPEG",
            sha256_hex(&photo_fixture("truncated.jpg")),
            photo_fixture("truncated.jpg"),
            "image/jpeg",
            422,
            Some("corrupt_image"),
        ),
        (
            "JPEG header claiming 3.6 gigapixels",
            sha256_hex(&photo_fixture("bomb.jpg")),
            photo_fixture("bomb.jpg"),
            "image/jpeg",
            422,
            Some("too_many_pixels"),
        ),
        (
            "wrong content type",
            sha256_hex(&good),
            good.clone(),
            "text/plain",
            415,
            None,
        ),
    ];
    let big = photo_fixture("doorplate.jpg");
    assert!(big.len() > 50_000);
    cases.push((
        "over the size limit",
        sha256_hex(&big),
        big,
        "image/jpeg",
        413,
        None,
    ));
    for (what, hash, bytes, content_type, status, rule) in cases {
        let response = app.put_photo_as(&token, &hash, bytes, content_type).await;
        let code = match status {
            413 => "payload_too_large",
            415 => "unsupported_media_type",
            _ => "validation_failed",
        };
        let body = problem(response, status, code).await;
        if let Some(rule) = rule {
            assert_eq!(
                (body["field"].as_str(), body["rule"].as_str()),
                (Some("body"), Some(rule)),
                "{what}: {body}"
            );
        }
        assert_eq!(
            app.head_photo(&token, &hash).await,
            404,
            "{what} left nothing behind"
        );
    }
    // Without a Content-Length the limit holds while reading.
    let big = photo_fixture("doorplate.jpg");
    let hash = sha256_hex(&big);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        big.chunks(16 * 1024).map(|c| Ok(c.to_vec())).collect();
    let response = app
        .request(Method::PUT, &format!("/api/v1/photos/{hash}"))
        .bearer_auth(&token)
        .header("content-type", "image/jpeg")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .expect("upload");
    problem(response, 413, "payload_too_large").await;

    if let taizhang::photos::PhotoStoreConfig::Disk(dir) = &app.settings.photos.store {
        let files = walk(dir);
        assert!(files.is_empty(), "nothing was written: {files:?}");
    }
    let bad_path = app
        .request(Method::PUT, "/api/v1/photos/not-a-hash")
        .bearer_auth(&token)
        .header("content-type", "image/jpeg")
        .body(good)
        .send()
        .await
        .expect("r");
    problem(bad_path, 400, "invalid_path").await;
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .flat_map(|e| {
            if e.path().is_dir() {
                walk(&e.path())
            } else {
                vec![e.path()]
            }
        })
        .collect()
}

async fn only_field_roles_upload_and_scope_decides_who_sees(backend: Backend, store: Store) {
    let app = TestApp::spawn_with_store(backend, store, |_| {}).await;
    let bytes = photo_fixture("fields.jpg");
    let hash = sha256_hex(&bytes);
    for reviewer in [REVIEWER_TAOBEI, CITY_ADMIN] {
        let token = app.token(reviewer).await;
        problem(
            app.put_photo_as(&token, &hash, bytes.clone(), "image/jpeg")
                .await,
            403,
            "forbidden_role",
        )
        .await;
    }
    let uploader = app.token(ENUMERATOR_TAOBEI).await;
    assert_eq!(
        app.put_photo_as(&uploader, &hash, bytes.clone(), "image/jpeg")
            .await
            .status(),
        201
    );

    let path = format!("/api/v1/photos/{hash}");
    let others = [
        app.token(ENUMERATOR_TAONAN).await,
        app.token(REVIEWER_TAOBEI).await,
        app.token(REVIEWER_TAONAN).await,
        app.token(CITY_ADMIN).await,
    ];
    for token in &others {
        problem(app.get_as(token, &path).await, 404, "not_found").await;
    }

    // A submission in 平安村 (洮北区) names the photo: 洮北区's reviewer and the city see it.
    let mut conn = app.settings.database.establish().expect("db");
    taizhang::photos::db::link(
        &mut conn,
        &hash,
        "0190b7c2-6d1e-7c3a-9a51-3f2d8e0b4c11",
        "220802100201",
    )
    .expect("link");
    assert_eq!(
        app.get_as(&others[1], &path).await.status(),
        200,
        "洮北区 reviewer"
    );
    assert_eq!(
        app.get_as(&others[3], &path).await.status(),
        200,
        "city admin"
    );
    problem(app.get_as(&others[2], &path).await, 404, "not_found").await;
    problem(app.get_as(&others[0], &path).await, 404, "not_found").await;
    problem(
        app.get_as(&others[3], &format!("/api/v1/photos/{}", "0".repeat(64)))
            .await,
        404,
        "not_found",
    )
    .await;
    problem(
        app.get_as(&others[3], &format!("{path}?size=huge")).await,
        400,
        "invalid_query",
    )
    .await;
    assert_eq!(app.get(&path).send().await.expect("r").status(), 401);
}

async fn concurrent_uploads_on_two_servers_store_one_photo(backend: Backend, store: Store) {
    let a = TestApp::spawn_with_store(backend, store, |_| {}).await;
    let photos = a.settings.photos.clone();
    let b = TestApp::spawn_on(a.database(), move |s| s.photos = photos).await;
    let (ta, tb) = (
        a.token(ENUMERATOR_TAOBEI).await,
        b.token(SECRETARY_TAOBEI).await,
    );
    let bytes = photo_fixture("household_step.jpg");
    let hash = sha256_hex(&bytes);
    let (ra, rb) = tokio::join!(
        a.put_photo_as(&ta, &hash, bytes.clone(), "image/jpeg"),
        b.put_photo_as(&tb, &hash, bytes.clone(), "image/jpeg")
    );
    let mut statuses = [ra.status().as_u16(), rb.status().as_u16()];
    statuses.sort();
    assert_eq!(
        statuses,
        [200, 201],
        "one stores, the other finds it stored"
    );
    let (ia, ib): (Value, Value) = (
        ra.json().await.expect("json"),
        rb.json().await.expect("json"),
    );
    assert_eq!(ia, ib);
    // Both uploaders may read it.
    assert_eq!(
        a.get_as(&ta, &format!("/api/v1/photos/{hash}"))
            .await
            .status(),
        200
    );
    assert_eq!(
        b.get_as(&tb, &format!("/api/v1/photos/{hash}"))
            .await
            .status(),
        200
    );
}

every_backend_and_store!(
    upload_is_idempotent_and_describes_the_photo,
    thumbnails_apply_orientation,
    png_and_webp_are_refused,
    bad_uploads_are_refused_and_store_nothing,
    only_field_roles_upload_and_scope_decides_who_sees,
    concurrent_uploads_on_two_servers_store_one_photo,
);
