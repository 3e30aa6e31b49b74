//! The contract checked on the wire. Every request a test sends through `TestApp` and every
//! answer it gets pass through [`Conformance`], which checks them against the OpenAPI document
//! the code generates (the one committed as `mobile-api-spec/openapi.json`):
//!
//! - the answer's status is one the operation documents, its media type is one documented for
//!   that status, and a JSON body validates against the documented schema — strictly: a field
//!   the schema does not declare fails, as a generated client would not know it;
//! - a problem's `code` is one the status's description names;
//! - a request the server accepted (2xx) sent only documented query parameters with valid
//!   values and a body that validates against the request schema: the server takes nothing the
//!   document does not describe.
//!
//! A violation panics inside `send()`, so the test that caused it fails and says why.
//! Requests outside `/api/` and the operations paths (the console) are not checked; a path no
//! operation has must answer 404 `not_found`, a documented path with another method 405.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use http::Extensions;
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};
use serde_json::{json, Map, Value};

/// Checks every exchange of a test client against the document.
pub struct Conformance;

#[async_trait::async_trait]
impl Middleware for Conformance {
    async fn handle(
        &self,
        req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let method = req.method().as_str().to_ascii_lowercase();
        let path = req.url().path().to_owned();
        let query: Vec<(String, String)> = req
            .url()
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let request_type = media_type(req.headers().get(reqwest::header::CONTENT_TYPE));
        let request_body = req.body().and_then(|b| b.as_bytes()).map(<[u8]>::to_vec);
        let response = next.run(req, extensions).await?;

        let status = response.status();
        let version = response.version();
        let headers = response.headers().clone();
        let body = response.bytes().await?;
        contract().check(&Exchange {
            method: &method,
            path: &path,
            query: &query,
            request_type: request_type.as_deref(),
            request_body: request_body.as_deref(),
            status: status.as_u16(),
            response_type: media_type(headers.get(reqwest::header::CONTENT_TYPE)).as_deref(),
            response_body: &body,
            encoded: headers
                .get(reqwest::header::CONTENT_ENCODING)
                .is_some_and(|e| e != "identity"),
        });

        // The body was read to check it: hand the test an equal answer.
        let mut rebuilt = http::Response::new(body);
        *rebuilt.status_mut() = status;
        *rebuilt.version_mut() = version;
        *rebuilt.headers_mut() = headers;
        Ok(Response::from(rebuilt))
    }
}

fn media_type(value: Option<&reqwest::header::HeaderValue>) -> Option<String> {
    let value = value?.to_str().ok()?;
    let essence = value.split(';').next().unwrap_or_default().trim();
    Some(essence.to_ascii_lowercase())
}

struct Exchange<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a [(String, String)],
    request_type: Option<&'a str>,
    request_body: Option<&'a [u8]>,
    status: u16,
    response_type: Option<&'a str>,
    response_body: &'a [u8],
    /// Compressed on the wire and not decoded by the client: the body is not read.
    encoded: bool,
}

/// One operation of the document, ready to check against.
struct Operation {
    method: String,
    template: String,
    /// `None` for a `{parameter}` segment.
    segments: Vec<Option<String>>,
    query: BTreeMap<String, QueryParam>,
    body: Option<Value>,
    responses: BTreeMap<String, Value>,
}

struct QueryParam {
    required: bool,
    schema: Value,
}

struct Contract {
    operations: Vec<Operation>,
    /// The components, made strict (see `strict`), embedded in every compiled schema.
    components: Value,
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

fn contract() -> &'static Contract {
    static CONTRACT: OnceLock<Contract> = OnceLock::new();
    CONTRACT.get_or_init(|| {
        let document: Value =
            serde_json::from_str(&taizhang::openapi::to_json(&taizhang::openapi::document()))
                .expect("the OpenAPI document is JSON");
        Contract::new(&document)
    })
}

impl Contract {
    fn new(document: &Value) -> Self {
        let mut operations = Vec::new();
        for (template, item) in document["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                let segments = template
                    .split('/')
                    .map(|s| (!s.starts_with('{')).then(|| s.to_owned()))
                    .collect();
                let query = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p["in"] == "query")
                    .map(|p| {
                        let name = p["name"].as_str().expect("parameter name").to_owned();
                        let param = QueryParam {
                            required: p["required"] == true,
                            schema: p["schema"].clone(),
                        };
                        (name, param)
                    })
                    .collect();
                let responses = op["responses"]
                    .as_object()
                    .expect("responses")
                    .iter()
                    .map(|(status, r)| (status.clone(), r.clone()))
                    .collect();
                operations.push(Operation {
                    method: method.clone(),
                    template: template.clone(),
                    segments,
                    query,
                    body: op.get("requestBody").cloned(),
                    responses,
                });
            }
        }
        let mut components = document["components"].clone();
        strict_components(&mut components);
        Self {
            operations,
            components,
            validators: Mutex::new(HashMap::new()),
        }
    }

    /// The operations whose path template matches `path`.
    fn matching(&self, path: &str) -> Vec<&Operation> {
        let segments: Vec<&str> = path.split('/').collect();
        let mut found: Vec<&Operation> = self
            .operations
            .iter()
            .filter(|op| {
                op.segments.len() == segments.len()
                    && op.segments.iter().zip(&segments).all(|(t, s)| match t {
                        Some(literal) => literal == s,
                        None => !s.is_empty(),
                    })
            })
            .collect();
        // A literal segment beats a parameter: `/surveys/households` over `/surveys/{id}`.
        let best = found
            .iter()
            .map(|op| op.segments.iter().filter(|s| s.is_some()).count())
            .max();
        found.retain(|op| Some(op.segments.iter().filter(|s| s.is_some()).count()) == best);
        found
    }

    fn check(&self, x: &Exchange<'_>) {
        let documented =
            x.path.starts_with("/api/") || self.operations.iter().any(|op| op.template == x.path);
        if !documented {
            return;
        }
        let candidates = self.matching(x.path);
        let Some(op) = candidates.iter().find(|op| op.method == x.method) else {
            let what = format!("{} {} (no such operation)", x.method.to_uppercase(), x.path);
            self.check_problem_body(&what, x, &json!({"$ref": "#/components/schemas/Problem"}));
            let body: Value = serde_json::from_slice(x.response_body).unwrap_or_default();
            let expected = if candidates.is_empty() {
                (404, "not_found")
            } else {
                (405, "method_not_allowed")
            };
            // A control character is refused before routing, whatever the path.
            let refused = (422, "validation_failed");
            let got = (x.status, body["code"].as_str().unwrap_or_default());
            if got != expected && !(got == refused && body["rule"] == "control_character") {
                fail(&what, &format!("answered {got:?}, expected {expected:?}"));
            }
            return;
        };
        let what = format!("{} {} ({})", x.method.to_uppercase(), op.template, x.path);
        self.check_response(op, &what, x);
        if (200..300).contains(&x.status) {
            self.check_request(op, &what, x);
        }
        record(&op.method, &op.template, x.status);
    }

    fn check_response(&self, op: &Operation, what: &str, x: &Exchange<'_>) {
        let status = x.status.to_string();
        let range = format!("{}XX", x.status / 100);
        let Some(response) = op
            .responses
            .get(&status)
            .or_else(|| op.responses.get(&range))
            .or_else(|| op.responses.get("default"))
        else {
            let listed: Vec<&String> = op.responses.keys().collect();
            let body = String::from_utf8_lossy(x.response_body);
            fail(
                what,
                &format!("answered {status}, which the document does not list (it lists {listed:?}); body: {body:.300}"),
            );
        };
        let content = response["content"].as_object();
        let Some(content) = content.filter(|c| !c.is_empty()) else {
            if !x.response_body.is_empty() && x.method != "head" {
                fail(
                    what,
                    &format!("answered {status} with a body, documented without one"),
                );
            }
            return;
        };
        if x.method == "head" || x.response_body.is_empty() && x.status == 304 {
            return;
        }
        let Some(media) = x.response_type else {
            fail(what, &format!("answered {status} without a content type"));
        };
        let Some(entry) = documented(content, media) else {
            let listed: Vec<&String> = content.keys().collect();
            fail(
                what,
                &format!("answered {status} as {media}, documented as {listed:?}"),
            );
        };
        if is_json(media) && !x.encoded {
            let body: Value = match serde_json::from_slice(x.response_body) {
                Ok(body) => body,
                Err(e) => fail(
                    what,
                    &format!("answered {status} with a body that is not JSON: {e}"),
                ),
            };
            self.validate(
                what,
                &format!("the {status} answer"),
                &entry["schema"],
                &body,
            );
            if media == "application/problem+json" {
                self.check_problem_code(what, &status, response, &body);
            }
        }
    }

    fn check_problem_body(&self, what: &str, x: &Exchange<'_>, schema: &Value) {
        if x.response_type != Some("application/problem+json") {
            fail(
                what,
                &format!("answered {:?}, not a problem", x.response_type),
            );
        }
        let body: Value = serde_json::from_slice(x.response_body).unwrap_or_default();
        self.validate(what, "the problem", schema, &body);
    }

    /// The problem's code must be one that `x-problem-codes` of the status lists.
    fn check_problem_code(&self, what: &str, status: &str, response: &Value, body: &Value) {
        let listed: Vec<&str> = response["x-problem-codes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let code = body["code"].as_str().unwrap_or_default();
        if !listed.contains(&code) {
            fail(
                what,
                &format!("answered {status} with code `{code}`, but the document lists only {listed:?} for it"),
            );
        }
    }

    fn check_request(&self, op: &Operation, what: &str, x: &Exchange<'_>) {
        for (name, value) in x.query {
            let Some(param) = op.query.get(name) else {
                let listed: Vec<&String> = op.query.keys().collect();
                fail(
                    what,
                    &format!("accepted query parameter `{name}`, which the document does not list (it lists {listed:?})"),
                );
            };
            let typed = coerce(value, &param.schema);
            self.validate(
                what,
                &format!("query parameter `{name}`"),
                &param.schema,
                &typed,
            );
        }
        for (name, param) in &op.query {
            if param.required && !x.query.iter().any(|(n, _)| n == name) {
                fail(
                    what,
                    &format!("succeeded without required query parameter `{name}`"),
                );
            }
        }
        let Some(body) = &op.body else {
            if x.request_body.is_some_and(|b| !b.is_empty()) {
                fail(what, "accepted a request body, documented without one");
            }
            return;
        };
        let Some(bytes) = x.request_body else {
            // A streamed body cannot be read here; an absent one must not be required.
            return;
        };
        let Some(media) = x.request_type else {
            fail(what, "accepted a request body without a content type");
        };
        let Some(entry) = body["content"]
            .as_object()
            .and_then(|c| documented(c, media))
        else {
            fail(
                what,
                &format!(
                    "accepted a request body as {media}, documented as {}",
                    body["content"]
                ),
            );
        };
        if is_json(media) {
            let value: Value = match serde_json::from_slice(bytes) {
                Ok(v) => v,
                Err(e) => fail(
                    what,
                    &format!("accepted a request body that is not JSON: {e}"),
                ),
            };
            self.validate(what, "the request body", &entry["schema"], &value);
        }
    }

    fn validate(&self, what: &str, part: &str, schema: &Value, instance: &Value) {
        let validator = self.validator(schema);
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("at `{}`: {e}", e.instance_path()))
            .take(5)
            .collect();
        if !errors.is_empty() {
            let text = instance.to_string();
            fail(
                what,
                &format!(
                    "{part} breaks its schema:\n  {}\n  instance: {text:.600}",
                    errors.join("\n  ")
                ),
            );
        }
    }

    fn validator(&self, schema: &Value) -> Arc<jsonschema::Validator> {
        let key = schema.to_string();
        let mut cache = self.validators.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = cache.get(&key) {
            return v.clone();
        }
        let mut inline = schema.clone();
        strict(&mut inline);
        // References are `#/components/...`: embed the components at the root they resolve to.
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": self.components,
            "allOf": [inline],
        });
        let validator = Arc::new(
            jsonschema::draft202012::options()
                .should_validate_formats(true)
                .build(&root)
                .unwrap_or_else(|e| {
                    panic!("contract: a schema of the document does not compile: {e}\n{key:.300}")
                }),
        );
        cache.insert(key, validator.clone());
        validator
    }
}

fn fail(what: &str, why: &str) -> ! {
    panic!("contract: {what} {why}")
}

/// The content entry of a media type: documented keys may carry parameters
/// (`text/plain; version=0.0.4`), compared here by their type alone.
fn documented<'a>(content: &'a Map<String, Value>, media: &str) -> Option<&'a Value> {
    content
        .iter()
        .find(|(key, _)| key.split(';').next().unwrap_or_default().trim() == media)
        .map(|(_, entry)| entry)
}

fn is_json(media: &str) -> bool {
    media == "application/json" || media.ends_with("+json")
}

/// A query string value as the JSON value its schema types: `5` for an integer, `true` for a
/// boolean; anything that does not parse stays a string, which the schema then refuses.
fn coerce(value: &str, schema: &Value) -> Value {
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if types.contains(&"integer") || types.contains(&"number") {
        if let Ok(n) = serde_json::from_str::<serde_json::Number>(value) {
            return Value::Number(n);
        }
    }
    if types.contains(&"boolean") && (value == "true" || value == "false") {
        return Value::Bool(value == "true");
    }
    Value::String(value.to_owned())
}

/// Makes every object schema that lists its properties refuse others, as
/// `unevaluatedProperties: false` (which, unlike `additionalProperties`, sees the properties of
/// the `allOf` parts). A component that is a part of an `allOf` is referred to through an open
/// copy, so that the whole, not the part, is closed.
fn strict_components(components: &mut Value) {
    let Some(schemas) = components["schemas"].as_object_mut() else {
        return;
    };
    let mut open = Map::new();
    for (name, schema) in schemas.iter_mut() {
        strict(schema);
        let mut opened = schema.clone();
        if let Value::Object(map) = &mut opened {
            map.remove("unevaluatedProperties");
        }
        open.insert(format!("{name}.open"), opened);
    }
    schemas.extend(open);
}

fn strict(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::Array(parts)) = map.get_mut("allOf") {
                for part in parts.iter_mut() {
                    if let Some(Value::String(r)) = part.get_mut("$ref") {
                        if !r.ends_with(".open") {
                            r.push_str(".open");
                        }
                    } else if let Value::Object(p) = part {
                        // An inline part: strict inside, open at its own level.
                        for (k, v) in p.iter_mut() {
                            if k != "properties" {
                                strict(v);
                            }
                        }
                        if let Some(Value::Object(props)) = p.get_mut("properties") {
                            props.values_mut().for_each(strict);
                        }
                    }
                }
                close(map);
                return;
            }
            if map.contains_key("properties") {
                close(map);
            }
            for (key, value) in map.iter_mut() {
                match key.as_str() {
                    "properties" => {
                        if let Value::Object(props) = value {
                            props.values_mut().for_each(strict);
                        }
                    }
                    "example" | "examples" | "enum" | "const" | "default" => {}
                    _ => strict(value),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strict),
        _ => {}
    }
}

fn close(map: &mut Map<String, Value>) {
    if !map.contains_key("additionalProperties") && !map.contains_key("unevaluatedProperties") {
        map.insert("unevaluatedProperties".into(), Value::Bool(false));
    }
}

/// Appends the operation and status to `$TAIZHANG_CONFORMANCE_LOG`, when set, so that a run of
/// the suite can list the operations and statuses its tests reached.
fn record(method: &str, template: &str, status: u16) {
    let Some(dir) = std::env::var_os("TAIZHANG_CONFORMANCE_LOG") else {
        return;
    };
    use std::io::Write;
    let path = std::path::Path::new(&dir).join(format!("{}.txt", std::process::id()));
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(file, "{} {template} {status}", method.to_uppercase());
    }
}
