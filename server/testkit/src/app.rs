//! The real server for a test, on SQLite or PostgreSQL, in-process or as a child process, and a
//! client that talks to it over HTTP with every exchange checked against the OpenAPI document.

use std::time::Duration;

use reqwest::{Method, Response};
use reqwest_middleware::{ClientWithMiddleware, RequestBuilder};
use serde_json::{json, Value};
use taizhang::config::Settings;
use taizhang::db::DatabaseUrl;
use taizhang::secrets::SecretSource;
use taizhang::startup::Application;
use tempfile::TempDir;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Where a test server keeps photos.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Disk,
    S3,
}

impl Store {
    /// Points the settings at a fresh store of this kind.
    pub async fn configure(self, settings: &mut Settings) {
        if self == Store::S3 {
            let (endpoint, bucket) = crate::moto::fresh_bucket().await;
            settings.photos.store = taizhang::photos::PhotoStoreConfig::S3 {
                bucket,
                prefix: "photos".into(),
                endpoint: Some(endpoint),
                region: "us-east-1".into(),
                access_key_id: "test".into(),
                secret_access_key: "test".into(),
            };
        }
    }
}

/// A demo user of `fixtures/demo_users.json`.
#[derive(Debug, Clone, Copy)]
pub struct DemoUser {
    pub phone: &'static str,
    pub password: &'static str,
}

pub const CITY_ADMIN: DemoUser = DemoUser {
    phone: "13900000001",
    password: "demo-city-0001",
};
/// County reviewer of 洮北区 (220802).
pub const REVIEWER_TAOBEI: DemoUser = DemoUser {
    phone: "13900000002",
    password: "demo-review-0002",
};
/// County reviewer of 洮南市 (220881).
pub const REVIEWER_TAONAN: DemoUser = DemoUser {
    phone: "13900000003",
    password: "demo-review-0003",
};
/// Enumerator of 220802100200 and 220802100201.
pub const ENUMERATOR_TAOBEI: DemoUser = DemoUser {
    phone: "13900000004",
    password: "demo-field-0004",
};
/// Enumerator of 220881100200 and 220881100201.
pub const ENUMERATOR_TAONAN: DemoUser = DemoUser {
    phone: "13900000005",
    password: "demo-field-0005",
};
/// First secretary of 220802100201.
pub const SECRETARY_TAOBEI: DemoUser = DemoUser {
    phone: "13900000006",
    password: "demo-leader-0006",
};

/// The master key every test server uses, so two servers can share one database.
pub const TEST_SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

pub struct TestApp {
    pub address: String,
    /// Checks every exchange against the OpenAPI document (see `conformance.rs`).
    pub client: ClientWithMiddleware,
    pub settings: Settings,
    handle: actix_web::dev::ServerHandle,
    state: std::sync::Arc<taizhang::state::AppState>,
    _data_dir: std::sync::Arc<TempDir>,
}

/// Where a test's database lives; clone it to start a second server on the same database.
#[derive(Clone)]
pub struct TestDatabase {
    pub url: DatabaseUrl,
    data_dir: std::sync::Arc<TempDir>,
}

impl TestDatabase {
    pub fn new(backend: Backend) -> Self {
        let data_dir = std::sync::Arc::new(tempfile::tempdir().expect("temporary data directory"));
        let url = match backend {
            Backend::Sqlite => DatabaseUrl::Sqlite(data_dir.path().join("taizhang.sqlite3")),
            Backend::Postgres => {
                DatabaseUrl::parse(&crate::pg::fresh_database()).expect("test database url")
            }
        };
        Self { url, data_dir }
    }

    pub fn settings(&self) -> Settings {
        let mut settings = Settings::new(self.data_dir.path());
        settings.database = self.url.clone();
        settings.bind = "127.0.0.1:0".into();
        settings.secret = SecretSource::Value(TEST_SECRET.into());
        settings.demo = true;
        settings.workers = Some(2);
        settings.db_pool_size = 4;
        settings
    }
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_on(TestDatabase::new(backend), |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> Self {
        Self::spawn_on(TestDatabase::new(backend), configure).await
    }

    /// A server with its photos in the given store.
    pub async fn spawn_with_store(
        backend: Backend,
        store: Store,
        configure: impl FnOnce(&mut Settings),
    ) -> Self {
        let db = TestDatabase::new(backend);
        let mut settings = db.settings();
        store.configure(&mut settings).await;
        let photos = settings.photos.clone();
        Self::spawn_on(db, move |s| {
            s.photos = photos;
            configure(s)
        })
        .await
    }

    /// Starts a server on an existing test database (a second process, in effect).
    pub async fn spawn_on(db: TestDatabase, configure: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = db.settings();
        configure(&mut settings);
        let app = Application::build(settings.clone())
            .await
            .expect("the server starts");
        let address = format!("http://127.0.0.1:{}", app.port());
        let handle = app.handle();
        let state = app.state();
        actix_web::rt::spawn(app.run_until_stopped());
        let client = checked_client(reqwest::Client::builder().timeout(Duration::from_secs(30)));
        Self {
            address,
            client,
            settings,
            handle,
            state,
            _data_dir: db.data_dir,
        }
    }

    /// The server's database handle: for the group commit's pause and figures.
    pub fn db(&self) -> &taizhang::db::Db {
        &self.state.db
    }

    pub fn database(&self) -> TestDatabase {
        TestDatabase {
            url: self.settings.database.clone(),
            data_dir: self._data_dir.clone(),
        }
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{}", self.address, path))
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.request(Method::GET, path)
    }

    pub fn post(&self, path: &str) -> RequestBuilder {
        self.request(Method::POST, path)
    }

    pub async fn login_response(&self, phone: &str, password: &str, device_id: &str) -> Response {
        self.post("/api/v1/auth/login")
            .json(&json!({"phone": phone, "password": password, "device_id": device_id}))
            .send()
            .await
            .expect("login request")
    }

    /// Logs a demo user in and returns the whole token answer.
    pub async fn login(&self, user: DemoUser) -> Value {
        let response = self
            .login_response(user.phone, user.password, "test-device")
            .await;
        assert_eq!(response.status(), 200, "login of {} failed", user.phone);
        response.json().await.expect("login JSON")
    }

    /// Logs a demo user in and returns an access token.
    pub async fn token(&self, user: DemoUser) -> String {
        self.login(user).await["access_token"]
            .as_str()
            .expect("access token")
            .to_owned()
    }

    pub async fn get_as(&self, token: &str, path: &str) -> Response {
        self.get(path)
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    /// POSTs `body` as JSON with `token`.
    pub async fn post_as(&self, token: &str, path: &str, body: &serde_json::Value) -> Response {
        self.post(path)
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// Uploads a JPEG photo under its SHA-256.
    pub async fn put_photo(&self, token: &str, sha256: &str, bytes: Vec<u8>) -> Response {
        self.put_photo_as(token, sha256, bytes, "image/jpeg").await
    }

    /// Uploads bytes as a photo with the given content type.
    pub async fn put_photo_as(
        &self,
        token: &str,
        sha256: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Response {
        self.request(Method::PUT, &format!("/api/v1/photos/{sha256}"))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(bytes)
            .send()
            .await
            .expect("upload")
    }

    /// The status of `HEAD /api/v1/photos/{sha256}`: 200 when the caller uploaded it.
    pub async fn head_photo(&self, token: &str, sha256: &str) -> u16 {
        self.request(Method::HEAD, &format!("/api/v1/photos/{sha256}"))
            .bearer_auth(token)
            .send()
            .await
            .expect("head")
            .status()
            .as_u16()
    }

    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }
}

/// The bytes of a photo of `fixtures/photos/`.
pub fn photo_fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/fixtures/photos/{name}", crate::ROOT)).expect("photo fixture")
}

/// SHA-256 in lower-case hex, as photos are named.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Logs a demo user in on the server at `address` (a `taizhang serve` process) and returns an
/// access token.
pub async fn log_in(client: &ClientWithMiddleware, address: &str, user: DemoUser) -> String {
    let answer: Value = client
        .post(format!("{address}/api/v1/auth/login"))
        .json(&json!({"phone": user.phone, "password": user.password, "device_id": "d"}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("login JSON");
    answer["access_token"]
        .as_str()
        .expect("access token")
        .to_owned()
}

/// A header of an answer as text ("" when absent).
pub fn header_of(response: &Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// A test client whose every exchange is checked against the OpenAPI document (see
/// `conformance.rs`).
pub fn checked_client(builder: reqwest::ClientBuilder) -> ClientWithMiddleware {
    let client = builder.no_proxy().build().expect("http client");
    reqwest_middleware::ClientBuilder::new(client)
        .with(crate::conformance::Conformance)
        .build()
}

/// Reads a problem+json answer, checking its content type, status and code.
pub async fn problem(response: Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status(), status, "status");
    let content_type = header_of(&response, "content-type");
    let request_id = header_of(&response, "x-request-id");
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.expect("problem JSON");
    assert_eq!(body["code"], code, "problem code in {body}");
    assert_eq!(body["status"], status);
    assert_eq!(body["type"], format!("urn:taizhang:problem:{code}"));
    assert!(
        !request_id.is_empty() && body["request_id"] == request_id.as_str(),
        "request id in body and header"
    );
    body
}

/// A `taizhang serve` child process on its own data directory, stopped when dropped.
pub struct ServerProcess {
    pub address: String,
    // Declared before the directory: the process stops before its directory goes.
    _process: crate::process::Spawned,
    _data_dir: TempDir,
}

impl ServerProcess {
    /// Starts the real binary on `database_url` with the test secret and the demo users.
    pub fn start(database_url: &str) -> Self {
        let data_dir = tempfile::tempdir().expect("data dir");
        let process = crate::process::spawn(
            database_url,
            data_dir.path(),
            "127.0.0.1:0",
            TEST_SECRET,
            &[("TAIZHANG_WORKERS", "2".as_ref())],
        )
        .expect("start taizhang");
        Self {
            address: process.address.clone(),
            _process: process,
            _data_dir: data_dir,
        }
    }

    /// The process id, to read its memory and CPU time from `/proc`.
    pub fn pid(&self) -> u32 {
        self._process.child.id()
    }
}
