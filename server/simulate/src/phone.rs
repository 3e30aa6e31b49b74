//! One simulated phone (or reviewer's browser) talking to the server as the app guide says:
//! log in, refresh the access token when it expires, ask whether a photo is there before
//! uploading it, and resend a submission with the same `submission_id` until the server
//! answers — through dropped answers, timeouts and a server that went away.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::faults::{Fault, Faults};
use super::stats::Stats;

/// What a request carries.
#[derive(Clone)]
pub enum Body {
    Empty,
    Json(Value),
    Jpeg(Arc<Vec<u8>>),
}

/// A finished exchange: the server answered (and the answer reached us).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    /// When the first attempt left and when this answer arrived.
    pub first_attempt: chrono::DateTime<chrono::Utc>,
    pub answered: chrono::DateTime<chrono::Utc>,
    /// Latency of the attempt that was answered.
    pub latency: Duration,
}

pub struct Phone {
    pub server: String,
    phone: String,
    password: String,
    device: String,
    access: Option<String>,
    refresh: Option<String>,
    client: reqwest::Client,
    faults: Faults,
    stats: Arc<Stats>,
    give_up_after: Duration,
    /// Requests allowed in flight over all phones.
    gate: Arc<tokio::sync::Semaphore>,
}

pub struct PhoneConfig {
    pub server: String,
    pub phone: String,
    pub password: String,
    pub device: String,
    pub client: reqwest::Client,
    pub faults: Faults,
    pub stats: Arc<Stats>,
    pub give_up_after: Duration,
    pub gate: Arc<tokio::sync::Semaphore>,
}

/// Whether an error is worth another try: the network, the server restarting, an overload.
fn retryable(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

impl Phone {
    pub fn new(c: PhoneConfig) -> Self {
        Phone {
            server: c.server,
            phone: c.phone,
            password: c.password,
            device: c.device,
            access: None,
            refresh: None,
            client: c.client,
            faults: c.faults,
            stats: c.stats,
            give_up_after: c.give_up_after,
            gate: c.gate,
        }
    }

    /// One attempt, no retry.
    async fn attempt(
        &self,
        method: &Method,
        path: &str,
        body: &Body,
        token: Option<&str>,
        fault: Fault,
    ) -> Result<(StatusCode, Value, Duration), reqwest::Error> {
        let _permit = self.gate.acquire().await;
        let mut request = self
            .client
            .request(method.clone(), format!("{}{}", self.server, path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request = match body {
            Body::Empty => request,
            Body::Json(v) => request.json(v),
            Body::Jpeg(bytes) => request
                .header("content-type", "image/jpeg")
                .body(bytes.as_ref().clone()),
        };
        if let Fault::Timeout(after) = fault {
            request = request.timeout(after);
        }
        let started = Instant::now();
        let response = request.send().await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        let latency = started.elapsed();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        Ok((status, body, latency))
    }

    /// Sends until the server answers something final, resending the same bytes. With
    /// `authed`, a 401 makes the phone refresh its token (or log in again) and resend.
    pub async fn exchange(
        &mut self,
        method: Method,
        path: &str,
        body: Body,
        authed: bool,
        inject: bool,
    ) -> anyhow::Result<Answer> {
        if !authed {
            return self
                .until_answered(&method, path, &body, None, inject)
                .await;
        }
        let first_attempt = chrono::Utc::now();
        for _ in 0..5 {
            if self.access.is_none() {
                self.authenticate().await?;
            }
            let token = self.access.clone();
            let mut answer = self
                .until_answered(&method, path, &body, token.as_deref(), inject)
                .await?;
            if answer.status == StatusCode::UNAUTHORIZED {
                self.stats.count(&self.stats.unauthorised);
                self.access = None;
                continue;
            }
            answer.first_attempt = first_attempt;
            return Ok(answer);
        }
        bail!("{method} {path}: still unauthorised after logging in again")
    }

    /// Resends until an answer that is not a server error arrives (and is not lost).
    async fn until_answered(
        &mut self,
        method: &Method,
        path: &str,
        body: &Body,
        token: Option<&str>,
        inject: bool,
    ) -> anyhow::Result<Answer> {
        let started = Instant::now();
        let first_attempt = chrono::Utc::now();
        let mut backoff = Duration::from_millis(40);
        loop {
            let fault = if inject {
                self.faults.draw()
            } else {
                Fault::None
            };
            self.stats.count(&self.stats.attempts);
            match self.attempt(method, path, body, token, fault).await {
                Ok((status, body, latency)) if !retryable(status) => {
                    if fault == Fault::DropResponse {
                        // The server did the work; the answer is lost on the way back.
                        self.stats.count(&self.stats.dropped_answers);
                    } else {
                        return Ok(Answer {
                            status,
                            body,
                            first_attempt,
                            answered: chrono::Utc::now(),
                            latency,
                        });
                    }
                }
                Ok((status, body, _)) => {
                    self.stats.count(&self.stats.server_errors);
                    tracing::debug!(%status, %body, path, "server error, will retry");
                }
                Err(error) => {
                    if error.is_timeout() {
                        self.stats.count(&self.stats.timeouts);
                    } else {
                        self.stats.count(&self.stats.network_errors);
                    }
                    tracing::debug!(%error, path, "network error, will retry");
                }
            }
            if started.elapsed() > self.give_up_after {
                self.stats.count(&self.stats.gave_up);
                bail!(
                    "{method} {path}: no answer after {:.0} s of retries",
                    started.elapsed().as_secs_f64()
                );
            }
            self.stats.count(&self.stats.retries);
            // Exponential backoff with jitter, as the app guide asks, capped at one second.
            let jitter = self.faults.jitter(backoff);
            tokio::time::sleep(backoff + jitter).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    /// A fresh access token: by the refresh token if there is one, else by logging in.
    async fn authenticate(&mut self) -> anyhow::Result<()> {
        if let Some(refresh) = self.refresh.take() {
            let body = Body::Json(json!({"refresh_token": refresh}));
            let answer = self
                .until_answered(&Method::POST, "/api/v1/auth/refresh", &body, None, false)
                .await?;
            if answer.status.is_success() {
                self.stats.count(&self.stats.refreshes);
                return self.take_tokens(&answer.body);
            }
            // Rotated away or revoked (a reused refresh token revokes its family): log in.
        }
        let body = Body::Json(
            json!({"phone": self.phone, "password": self.password, "device_id": self.device}),
        );
        let answer = self
            .until_answered(&Method::POST, "/api/v1/auth/login", &body, None, false)
            .await?;
        if !answer.status.is_success() {
            bail!(
                "login of {} refused: {} {}",
                self.phone,
                answer.status,
                answer.body
            );
        }
        self.stats.count(&self.stats.logins);
        self.take_tokens(&answer.body)
    }

    fn take_tokens(&mut self, body: &Value) -> anyhow::Result<()> {
        let access = body["access_token"]
            .as_str()
            .ok_or_else(|| anyhow!("token answer without access_token: {body}"))?;
        self.access = Some(access.to_owned());
        self.refresh = body["refresh_token"].as_str().map(str::to_owned);
        Ok(())
    }

    pub async fn login(&mut self) -> anyhow::Result<()> {
        self.access = None;
        self.refresh = None;
        self.authenticate().await
    }

    /// Drops the access token, as when it expires: the next request refreshes.
    pub fn expire_access(&mut self) {
        self.access = None;
    }

    /// Makes sure the server has the photo: HEAD, then PUT only if it is missing.
    pub async fn ensure_photo(
        &mut self,
        sha: &str,
        bytes: &Arc<Vec<u8>>,
        inject: bool,
    ) -> anyhow::Result<()> {
        let path = format!("/api/v1/photos/{sha}");
        let head = self
            .exchange(Method::HEAD, &path, Body::Empty, true, inject)
            .await?;
        if head.status.is_success() {
            self.stats.count(&self.stats.photos_present);
            return Ok(());
        }
        let put = self
            .exchange(Method::PUT, &path, Body::Jpeg(bytes.clone()), true, inject)
            .await?;
        if !put.status.is_success() {
            bail!("PUT {path}: {} {}", put.status, put.body);
        }
        self.stats.count(&self.stats.photos_uploaded);
        Ok(())
    }

    pub async fn get(&mut self, path: &str) -> anyhow::Result<Value> {
        let answer = self
            .exchange(Method::GET, path, Body::Empty, true, false)
            .await?;
        if !answer.status.is_success() {
            bail!("GET {path}: {} {}", answer.status, answer.body);
        }
        Ok(answer.body)
    }

    pub async fn post(&mut self, path: &str, body: Value, inject: bool) -> anyhow::Result<Answer> {
        self.exchange(Method::POST, path, Body::Json(body), true, inject)
            .await
            .with_context(|| format!("POST {path}"))
    }
}
