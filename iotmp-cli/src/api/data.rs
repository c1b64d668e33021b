//! Recorded data and recorders (this project's addition to spec chapter 8; same rules as §8.1:
//! `/v3` paths, bearer tokens, JSON bodies and `{"error": text}` errors).
//!
//! | Method & path | Action |
//! |---|---|
//! | `GET /v3/users/{user}/buckets/{bucket}/data?from=&to=&limit=` | records, oldest first: `[{"ts": unix_ms, "value": <json>}]` |
//! | `GET /v3/users/{user}/recorders` | the user's recorders |
//! | `POST /v3/users/{user}/recorders` | add one: `{"device", "resource", "bucket", "interval"}` → 201 |
//! | `DELETE /v3/users/{user}/recorders/{id}` | remove one (its bucket and records stay) |
//!
//! `from` and `to` are unix milliseconds, a half-open range `from <= ts < to` so that pages
//! neither overlap nor leave gaps (the next page starts at the last `ts` + 1); `limit` is
//! 1..=[`ApiLimits::max_records`](super::ApiLimits::max_records), default
//! [`DEFAULT_RECORD_LIMIT`]. Storage is slower than memory, so every call goes through a
//! future, and the wait is bounded like a device's answer.

use async_io::Timer;
use futures_lite::future::FutureExt as _;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{Map, Value as Json, json};

use super::backend::{
    BoxFuture, BucketRecord, DataFailure, NewRecorder, RecordQuery, RecorderInfo,
};
use super::errors::ApiError;
use super::json::{ApiBody, json_response, read_body};
use super::routes::query_param;
use super::server::App;

/// `limit` when the query has none.
pub const DEFAULT_RECORD_LIMIT: u32 = 1000;

/// Text of a 404 for a bucket the user does not have.
pub const UNKNOWN_BUCKET: &str = "unknown bucket";
/// Text of a 404 for a recorder id the user does not have.
pub const UNKNOWN_RECORDER: &str = "unknown recorder";
/// Text of a 503 when storage does not answer within the answer timeout.
const STORAGE_BUSY: &str = "storage busy";

/// `GET .../buckets/{bucket}/data`.
pub(crate) async fn records(
    app: &App,
    user: &str,
    bucket: &str,
    query: Option<&str>,
) -> Result<Response<ApiBody>, ApiError> {
    let query = record_query(query, app.limits.max_records)?;
    let records = wait(app, app.backend.records(user, bucket, query)).await?;
    Ok(json_response(&records_json(&records)))
}

/// `GET .../recorders`.
pub(crate) async fn list_recorders(app: &App, user: &str) -> Result<Response<ApiBody>, ApiError> {
    let recorders = wait(app, app.backend.recorders(user)).await?;
    let list: Vec<Json> = recorders.iter().map(recorder_json).collect();
    Ok(json_response(&Json::Array(list)))
}

/// `POST .../recorders` with a JSON object body.
pub(crate) async fn add_recorder(
    app: &App,
    user: &str,
    request: Request<Incoming>,
) -> Result<Response<ApiBody>, ApiError> {
    let (parts, body) = request.into_parts();
    let bytes = read_body(&parts.headers, body, app.limits.max_body).await?;
    let recorder = new_recorder(&bytes, app.limits.max_interval_s)?;
    let added = wait(app, app.backend.add_recorder(user, recorder)).await?;
    let mut response = json_response(&recorder_json(&added));
    *response.status_mut() = StatusCode::CREATED;
    Ok(response)
}

/// `DELETE .../recorders/{id}`.
pub(crate) async fn remove_recorder(
    app: &App,
    user: &str,
    id: &str,
) -> Result<Response<ApiBody>, ApiError> {
    // Ids are positive row ids; anything else names no recorder.
    let id = id
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0 && id.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| ApiError::not_found(UNKNOWN_RECORDER))?;
    wait(app, app.backend.remove_recorder(user, id)).await?;
    Ok(json_response(&json!({ "removed": id })))
}

/// Waits for a storage answer, at most the answer timeout.
async fn wait<T>(app: &App, answer: BoxFuture<Result<T, DataFailure>>) -> Result<T, ApiError> {
    let timeout = app.limits.answer_timeout;
    let answer = async { Some(answer.await) }
        .or(async {
            Timer::after(timeout).await;
            None
        })
        .await;
    match answer {
        None => Err(ApiError::unavailable(STORAGE_BUSY)),
        Some(result) => result.map_err(|failure| from_failure(&failure)),
    }
}

/// The status of each failure.
pub(crate) fn from_failure(failure: &DataFailure) -> ApiError {
    match failure {
        DataFailure::NotFound(text) => ApiError::not_found(text.clone()),
        DataFailure::Invalid(text) => ApiError::bad_request(text.clone()),
        DataFailure::Conflict(text) => ApiError::new(StatusCode::CONFLICT, text.clone()),
        DataFailure::Failed(text) => ApiError::internal(text.clone()),
        DataFailure::Unsupported => ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "this server keeps no recorded data",
        ),
    }
}

/// `from`, `to` and `limit` of a data query; anything malformed is 400.
pub(crate) fn record_query(query: Option<&str>, max_limit: u32) -> Result<RecordQuery, ApiError> {
    let time = |name: &str| -> Result<Option<i64>, ApiError> {
        let Some(text) = query_param(query, name)? else {
            return Ok(None);
        };
        let digits = text.strip_prefix('-').unwrap_or(&text);
        let valid = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
        valid
            .then(|| text.parse::<i64>().ok())
            .flatten()
            .map(Some)
            .ok_or_else(|| {
                ApiError::bad_request(format!("bad {name} {text:?}: expected unix milliseconds"))
            })
    };
    let (from, to) = (time("from")?, time("to")?);
    let max_limit = max_limit.max(1);
    let limit = match query_param(query, "limit")? {
        None => DEFAULT_RECORD_LIMIT.min(max_limit),
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=max_limit).contains(n) && text.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| {
                ApiError::bad_request(format!("bad limit {text:?}: expected 1..={max_limit}"))
            })?,
    };
    Ok(RecordQuery { from, to, limit })
}

/// The body of a data query.
pub(crate) fn records_json(records: &[BucketRecord]) -> Json {
    Json::Array(
        records
            .iter()
            .map(|r| json!({ "ts": r.ts_unix_ms, "value": r.value }))
            .collect(),
    )
}

/// One recorder as the API shows it.
pub(crate) fn recorder_json(r: &RecorderInfo) -> Json {
    json!({
        "id": r.id,
        "device": r.device,
        "resource": r.resource,
        "interval": r.interval_s,
        "bucket": r.bucket,
    })
}

/// The body of `POST .../recorders`: an object with `device`, `resource` and `bucket`
/// (strings) and `interval` (whole seconds, default 0 = every value). Other members are
/// refused, so that a misspelt one is not silently ignored.
pub(crate) fn new_recorder(bytes: &[u8], max_interval_s: u32) -> Result<NewRecorder, ApiError> {
    let json: Json = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    let Json::Object(mut object) = json else {
        return Err(ApiError::bad_request(
            "the body must be an object: {\"device\", \"resource\", \"bucket\", \"interval\"}",
        ));
    };
    let device = string(&mut object, "device")?;
    let resource = string(&mut object, "resource")?;
    let bucket = string(&mut object, "bucket")?;
    let interval_s = match object.remove("interval") {
        None => 0,
        Some(value) => value
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n <= max_interval_s)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "interval must be whole seconds 0..={max_interval_s}"
                ))
            })?,
    };
    if let Some(unknown) = object.keys().next() {
        return Err(ApiError::bad_request(format!(
            "unknown member {unknown:?}: expected device, resource, bucket, interval"
        )));
    }
    Ok(NewRecorder {
        device,
        resource,
        bucket,
        interval_s,
    })
}

/// Takes the string member `name` out of `object`.
fn string(object: &mut Map<String, Json>, name: &str) -> Result<String, ApiError> {
    match object.remove(name) {
        Some(Json::String(text)) => Ok(text),
        Some(_) => Err(ApiError::bad_request(format!("{name} must be a string"))),
        None => Err(ApiError::bad_request(format!("{name} is missing"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_queries() {
        let q = record_query(Some("from=5&to=-1&limit=7"), 100).unwrap();
        assert_eq!(
            q,
            RecordQuery {
                from: Some(5),
                to: Some(-1),
                limit: 7
            }
        );
        let q = record_query(None, 100).unwrap();
        assert_eq!((q.from, q.to, q.limit), (None, None, 100));
        let q = record_query(None, 10_000).unwrap();
        assert_eq!(q.limit, DEFAULT_RECORD_LIMIT);
        for bad in [
            "from=",
            "from=1.5",
            "from=+5",
            "to=-",
            "to=99999999999999999999",
            "limit=0",
            "limit=101",
            "limit=-1",
            "limit=",
        ] {
            let e = record_query(Some(bad), 100).unwrap_err();
            assert_eq!(e.status.as_u16(), 400, "{bad}");
        }
    }

    #[test]
    fn recorder_bodies() {
        let r = new_recorder(
            br#"{"device":"dev01","resource":"temp","bucket":"b","interval":10}"#,
            86_400,
        )
        .unwrap();
        assert_eq!(
            (r.device.as_str(), r.resource.as_str(), r.bucket.as_str()),
            ("dev01", "temp", "b")
        );
        assert_eq!(r.interval_s, 10);
        let r = new_recorder(br#"{"device":"d","resource":"r","bucket":"b"}"#, 60).unwrap();
        assert_eq!(r.interval_s, 0);
        for (bad, needle) in [
            (&br#"[1]"#[..], "object"),
            (br#"{"device":"d","resource":"r"}"#, "bucket is missing"),
            (
                br#"{"device":1,"resource":"r","bucket":"b"}"#,
                "device must be",
            ),
            (
                br#"{"device":"d","resource":"r","bucket":"b","interval":61}"#,
                "interval",
            ),
            (
                br#"{"device":"d","resource":"r","bucket":"b","interval":1.5}"#,
                "interval",
            ),
            (
                br#"{"device":"d","resource":"r","bucket":"b","every":1}"#,
                "unknown member \"every\"",
            ),
            (b"{", "invalid JSON"),
        ] {
            let e = new_recorder(bad, 60).unwrap_err();
            assert_eq!(e.status.as_u16(), 400);
            assert!(e.text.contains(needle), "{}: {}", needle, e.text);
        }
    }

    #[test]
    fn failures_map_to_statuses() {
        let status = |f: DataFailure| from_failure(&f).status.as_u16();
        assert_eq!(status(DataFailure::NotFound(UNKNOWN_BUCKET.into())), 404);
        assert_eq!(status(DataFailure::Invalid("x".into())), 400);
        assert_eq!(status(DataFailure::Conflict("x".into())), 409);
        assert_eq!(status(DataFailure::Failed("x".into())), 500);
        assert_eq!(status(DataFailure::Unsupported), 501);
    }

    #[test]
    fn bodies() {
        let records = [BucketRecord {
            ts_unix_ms: 7,
            value: json!({"t": 1.5}),
        }];
        assert_eq!(
            records_json(&records).to_string(),
            r#"[{"ts":7,"value":{"t":1.5}}]"#
        );
    }
}
