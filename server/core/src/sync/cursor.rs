//! The download cursor: per stream (each assigned village, and the employer registry) the
//! generation delivered, and while a session pages the generation it pages up to and the
//! position reached. Opaque to the phone: base64url JSON and an HMAC tag under a key derived
//! from the master secret, bound to the user it was given to.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::{bad_query, ApiResult};

/// Where a stream's paging stands: `(stamp, item kind, id)`, the order items are delivered in.
pub type Position = (i64, u8, String);

/// One stream's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stream {
    /// Every item stamped at or below this generation has been delivered (-1: nothing yet).
    #[serde(rename = "d")]
    pub done: i64,
    /// While a session pages: the generation it delivers up to (a snapshot taken on its
    /// first page, so writes during the session wait for the next one).
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    pub target: Option<i64>,
    /// While a session pages: the last item delivered.
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Position>,
}

impl Stream {
    /// A stream the phone has never seen.
    pub fn new() -> Self {
        Self {
            done: -1,
            target: None,
            after: None,
        }
    }
}

impl Default for Stream {
    fn default() -> Self {
        Self::new()
    }
}

/// The whole cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The user it was given to.
    #[serde(rename = "u")]
    pub user: String,
    /// Streams by name: a village code, or `employers` (which sorts after every code).
    #[serde(rename = "s")]
    pub streams: BTreeMap<String, Stream>,
}

const TAG_LEN: usize = 16;

fn mac(key: &[u8; 32]) -> Hmac<Sha256> {
    #[allow(clippy::expect_used, reason = "HMAC accepts keys of any length")]
    let mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac
}

/// The cursor as the phone receives it: `base64url(json).base64url(tag)`.
pub fn encode(key: &[u8; 32], state: &State) -> String {
    let json = serde_json::to_vec(state).unwrap_or_default();
    let mut m = mac(key);
    m.update(&json);
    let tag = m.finalize().into_bytes();
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&json),
        URL_SAFE_NO_PAD.encode(&tag[..TAG_LEN])
    )
}

/// A cursor back from the phone: 400 `invalid_query` (field `cursor`) unless this server gave
/// it to this user, unaltered.
pub fn decode(key: &[u8; 32], user: &str, cursor: &str) -> ApiResult<State> {
    let bad = || {
        bad_query(
            "cursor",
            "不是本服务器为您给出的同步游标，请不带游标重新同步",
        )
    };
    let (body, tag) = cursor.split_once('.').ok_or_else(bad)?;
    let json = URL_SAFE_NO_PAD.decode(body).map_err(|_| bad())?;
    let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| bad())?;
    if tag.len() != TAG_LEN {
        return Err(bad());
    }
    let mut m = mac(key);
    m.update(&json);
    m.verify_truncated_left(&tag).map_err(|_| bad())?;
    let state: State = serde_json::from_slice(&json).map_err(|_| bad())?;
    if state.user != user {
        return Err(bad());
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_tampering() {
        let key = [7u8; 32];
        let mut state = State {
            user: "u1".into(),
            ..State::default()
        };
        state.streams.insert(
            "220802100201".into(),
            Stream {
                done: 4,
                target: Some(9),
                after: Some((5, 1, "h".into())),
            },
        );
        let text = encode(&key, &state);
        assert_eq!(decode(&key, "u1", &text).expect("ours"), state);
        assert!(decode(&key, "u2", &text).is_err(), "another user's");
        assert!(decode(&[8u8; 32], "u1", &text).is_err(), "another key");
        let (body, tag) = text.split_once('.').expect("two parts");
        let forged = URL_SAFE_NO_PAD.encode(
            String::from_utf8(URL_SAFE_NO_PAD.decode(body).expect("b64"))
                .expect("utf8")
                .replace("\"d\":4", "\"d\":8"),
        );
        assert!(decode(&key, "u1", &format!("{forged}.{tag}")).is_err());
        assert!(decode(&key, "u1", "garbage").is_err());
        assert!(decode(&key, "u1", "").is_err());
    }
}
