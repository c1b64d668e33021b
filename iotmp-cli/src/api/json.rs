//! JSON in and out: bounded request bodies (spec §7.1), the value mapping of §8.3 (from
//! `iotmp_proto::json::value`), and the JSON bodies of §8.2.

use std::convert::Infallible;

use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Bytes};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};
use iotmp_proto::Value;
use iotmp_proto::json::value::{from_json, to_json};
use serde_json::{Value as Json, json};

use super::backend::DeviceInfo;
use super::errors::ApiError;

/// The body of every response: a buffer, or a stream (SSE).
pub(crate) type ApiBody = UnsyncBoxBody<Bytes, Infallible>;

/// A body holding `bytes`.
pub(crate) fn full(bytes: impl Into<Bytes>) -> ApiBody {
    Full::new(bytes.into()).boxed_unsync()
}

/// An empty body.
pub(crate) fn empty() -> ApiBody {
    full(Bytes::new())
}

/// A 200 with `json` as an `application/json` body.
pub(crate) fn json_response(json: &Json) -> Response<ApiBody> {
    let mut response = Response::new(full(json.to_string()));
    *response.status_mut() = StatusCode::OK;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A value as JSON (spec §8.3); no value (an OK without payload) is `null`.
pub(crate) fn value_json(value: Option<&Value>) -> Json {
    value.map_or(Json::Null, to_json)
}

/// The device list body (spec §8.2): sorted by id; `dialect` and `connected_at` are `null`
/// while a device is offline, whatever the backend said.
pub(crate) fn devices_json(mut devices: Vec<DeviceInfo>) -> Json {
    devices.sort_by(|a, b| a.device.cmp(&b.device));
    Json::Array(
        devices
            .into_iter()
            .map(|d| {
                let (dialect, connected_at) = if d.connected {
                    (d.dialect.map(|x| x.year()), d.connected_at_unix_ms)
                } else {
                    (None, None)
                };
                json!({
                    "device": d.device,
                    "connected": d.connected,
                    "dialect": dialect,
                    "connected_at": connected_at,
                })
            })
            .collect(),
    )
}

/// Reads a request body of at most `limit` bytes and converts it to a RUN input (spec §8.3):
/// an empty (or all-whitespace) body is no input; anything else must be one JSON document.
pub(crate) async fn read_input<B>(
    headers: &HeaderMap,
    body: B,
    limit: usize,
) -> Result<Option<Value>, ApiError>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    parse_input(&read_body(headers, body, limit).await?)
}

/// Reads a request body of at most `limit` bytes (400 beyond, before reading any of it when
/// `Content-Length` says so).
pub(crate) async fn read_body<B>(
    headers: &HeaderMap,
    body: B,
    limit: usize,
) -> Result<Bytes, ApiError>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let too_large = || ApiError::bad_request(format!("request body above {limit} bytes"));
    // Refuse a declared oversize body before reading any of it.
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX)) {
        return Err(too_large());
    }
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
        Err(e) => return Err(ApiError::bad_request(format!("cannot read the body: {e}"))),
    };
    Ok(bytes)
}

/// A request body as a RUN input (see [`read_input`]).
pub(crate) fn parse_input(bytes: &[u8]) -> Result<Option<Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let json: Json = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    from_json(&json)
        .map(Some)
        .map_err(|e| ApiError::bad_request(e.to_string()))
}

#[cfg(test)]
mod tests {
    use iotmp_proto::Dialect;

    use super::*;

    #[test]
    fn inputs_follow_8_3() {
        assert_eq!(parse_input(b"").unwrap(), None);
        assert_eq!(parse_input(b" \r\n").unwrap(), None);
        assert_eq!(parse_input(b"true").unwrap(), Some(Value::Bool(true)));
        assert_eq!(parse_input(b"22.0").unwrap(), Some(Value::UInt(22)));
        assert_eq!(parse_input(b"23.5").unwrap(), Some(Value::F32(23.5)));
        assert_eq!(
            parse_input(b"18446744073709551615").unwrap(),
            Some(Value::UInt(u64::MAX))
        );
        for bad in [
            &b"{"[..],
            b"18446744073709551616",
            b"-9223372036854775809",
            b"1e400",
            b"1 2",
        ] {
            let e = parse_input(bad).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad:?}");
        }
        // Duplicate keys: the last wins.
        let v = parse_input(br#"{"a":1,"a":2}"#).unwrap().unwrap();
        assert_eq!(value_json(Some(&v)).to_string(), r#"{"a":2}"#);
    }

    #[test]
    fn bodies_are_bounded_while_streaming() {
        let read = |body: &'static [u8], limit| {
            futures_lite::future::block_on(read_input(
                &HeaderMap::new(),
                Full::new(Bytes::from_static(body)),
                limit,
            ))
        };
        assert_eq!(
            read(b"[1,2]", 5).unwrap(),
            Some(Value::Array(vec![1u64.into(), 2u64.into()]))
        );
        let e = read(b"[1,2] ", 5).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.text, "request body above 5 bytes");
        // A declared length above the limit is refused before reading.
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("6"));
        let e = futures_lite::future::block_on(read_input(
            &headers,
            Full::new(Bytes::from_static(b"1")),
            5,
        ))
        .unwrap_err();
        assert_eq!(e.text, "request body above 5 bytes");
    }

    #[test]
    fn list_is_sorted_and_offline_devices_have_nulls() {
        let devices = vec![
            DeviceInfo {
                device: "b".into(),
                connected: false,
                dialect: Some(Dialect::Draft2020),
                connected_at_unix_ms: Some(5),
            },
            DeviceInfo {
                device: "a".into(),
                connected: true,
                dialect: Some(Dialect::Draft2026),
                connected_at_unix_ms: Some(1_700_000_000_000),
            },
        ];
        assert_eq!(
            devices_json(devices).to_string(),
            r#"[{"device":"a","connected":true,"dialect":"2026","connected_at":1700000000000},{"device":"b","connected":false,"dialect":null,"connected_at":null}]"#
        );
    }
}
