//! Paths, query parameters and dispatch (spec §8.1, §8.2).
//!
//! Order of checks for every request: the route (404 "unknown route"; 400 for a path that does
//! not percent-decode), the token (401 / 403), the method (405), then the endpoint's own checks
//! (bad `interval` 400, device 404, body 400) and finally the device.

use std::sync::Arc;

use async_io::Timer;
use futures_lite::future::FutureExt as _;
use hyper::body::Incoming;
use hyper::header::{ACCEPT, HeaderMap};
use hyper::{Method, Request, Response};
use iotmp_proto::Value;
use iotmp_proto::session::Answer;

use super::auth::authorize;
use super::backend::{BoxFuture, DeviceStatus};
use super::data;
use super::errors::{ApiError, DEVICE_OFFLINE, SHUTTING_DOWN, UNKNOWN_DEVICE};
use super::json::{ApiBody, devices_json, json_response, read_input, value_json};
use super::server::{App, ConnContext};
use super::{sse, transport, websocket};
use iotmp_proto::control::RequestResult;

/// What a path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// `/v3/users/{user}/devices`
    Devices { user: String },
    /// `/v3/users/{user}/devices/{device}/resources`
    Resources { user: String, device: String },
    /// `/v3/users/{user}/devices/{device}/resources/{resource...}`
    Resource {
        user: String,
        device: String,
        resource: String,
    },
    /// `/v3/users/{user}/buckets/{bucket}/data`
    BucketData { user: String, bucket: String },
    /// `/v3/users/{user}/recorders`
    Recorders { user: String },
    /// `/v3/users/{user}/recorders/{id}`
    Recorder { user: String, id: String },
}

impl Route {
    fn user(&self) -> &str {
        match self {
            Route::Devices { user }
            | Route::Resources { user, .. }
            | Route::Resource { user, .. }
            | Route::BucketData { user, .. }
            | Route::Recorders { user }
            | Route::Recorder { user, .. } => user,
        }
    }
}

/// Parses a request path. Each segment is percent-decoded on its own, so `%2F` inside a name is
/// a slash of that name, not a separator; the resource is every segment after `resources`,
/// decoded and joined with `/` (§8.1).
pub(crate) fn parse_path(path: &str) -> Result<Route, ApiError> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(ApiError::unknown_route());
    };
    let segments = rest
        .split('/')
        .map(percent_decode)
        .collect::<Result<Vec<_>, _>>()?;
    let literal = |i: usize, word: &str| segments.get(i).is_some_and(|s| s == word);
    if !(literal(0, "v3") && literal(1, "users")) {
        return Err(ApiError::unknown_route());
    }
    // The data routes (see `data`): fixed shapes, no trailing segments.
    match (segments.get(2), segments.get(3).map(String::as_str)) {
        (Some(user), Some("buckets")) => {
            return match (segments.get(4), segments.len()) {
                (Some(bucket), 6) if literal(5, "data") => Ok(Route::BucketData {
                    user: user.clone(),
                    bucket: bucket.clone(),
                }),
                _ => Err(ApiError::unknown_route()),
            };
        }
        (Some(user), Some("recorders")) => {
            return match (segments.get(4), segments.len()) {
                (None, 4) => Ok(Route::Recorders { user: user.clone() }),
                (Some(id), 5) => Ok(Route::Recorder {
                    user: user.clone(),
                    id: id.clone(),
                }),
                _ => Err(ApiError::unknown_route()),
            };
        }
        (_, Some("devices")) => {}
        _ => return Err(ApiError::unknown_route()),
    }
    let (user, device) = match (segments.get(2), segments.get(4)) {
        (Some(user), None) => {
            return Ok(Route::Devices { user: user.clone() });
        }
        (Some(user), Some(device)) if literal(5, "resources") => (user.clone(), device.clone()),
        _ => return Err(ApiError::unknown_route()),
    };
    match segments.get(6..) {
        None | Some([]) => Ok(Route::Resources { user, device }),
        Some(parts) => {
            let resource = parts.join("/");
            // `.../resources/` names no resource.
            if resource.is_empty() {
                return Err(ApiError::unknown_route());
            }
            Ok(Route::Resource {
                user,
                device,
                resource,
            })
        }
    }
}

/// Decodes `%XX` escapes (RFC 3986); the result must be UTF-8. `+` stays `+`: that rule is for
/// HTML forms, and tokens may contain `+`.
pub(crate) fn percent_decode(text: &str) -> Result<String, ApiError> {
    let malformed = || ApiError::bad_request("malformed percent-encoding in the request URL");
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            // Two hex digits exactly (`from_str_radix` would also take a sign).
            let digit = |at: usize| bytes.get(at).and_then(|&d| char::from(d).to_digit(16));
            let (Some(high), Some(low)) = (digit(i + 1), digit(i + 2)) else {
                return Err(malformed());
            };
            out.push(u8::try_from(high * 16 + low).map_err(|_| malformed())?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ApiError::bad_request("the request URL is not UTF-8"))
}

/// The first value of query parameter `name`, percent-decoded.
pub(crate) fn query_param(query: Option<&str>, name: &str) -> Result<Option<String>, ApiError> {
    for pair in query.unwrap_or("").split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if percent_decode(key)? == name {
            return percent_decode(value).map(Some);
        }
    }
    Ok(None)
}

/// `?interval=N` (§8.4): whole seconds 0..=`max`; absent = 0 (events only); anything else is 400.
pub(crate) fn parse_interval(value: Option<&str>, max: u32) -> Result<u32, ApiError> {
    let Some(text) = value else {
        return Ok(0);
    };
    text.parse::<u32>()
        .ok()
        .filter(|n| *n <= max && text.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "bad interval {text:?}: expected whole seconds 0..={max}"
            ))
        })
}

/// True when the headers hold `token` in the comma-separated list of header `name`
/// (case-insensitive), as for `Connection: keep-alive, Upgrade`.
pub(crate) fn header_has_token(
    headers: &HeaderMap,
    name: hyper::header::HeaderName,
    token: &str,
) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// True when `Accept` asks for Server-Sent Events.
fn wants_sse(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("text/event-stream"))
}

/// Serves one request; every failure becomes its JSON error response.
pub(crate) async fn handle(ctx: ConnContext, request: Request<Incoming>) -> Response<ApiBody> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = match dispatch(ctx, request).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    };
    // The query is never logged: it may hold a token.
    tracing::debug!("{method} {path} -> {}", response.status().as_u16());
    response
}

async fn dispatch(
    ctx: ConnContext,
    mut request: Request<Incoming>,
) -> Result<Response<ApiBody>, ApiError> {
    let app = Arc::clone(&ctx.app);
    // The device transport (§9) is outside `/v3` and authenticates in-band (CONNECT): no token.
    if let Some(bridge) = app.device_bridge
        && request.uri().path() == transport::PATH
    {
        return transport::open(ctx, request, bridge).await;
    }
    let route = parse_path(request.uri().path())?;
    let query = request.uri().query().map(str::to_owned);
    let query = query.as_deref();
    let token = query_param(query, "authorization")?;
    authorize(
        &*app.backend,
        request.headers(),
        token.as_deref(),
        route.user(),
    )?;
    let method = request.method().clone();
    match route {
        Route::Devices { user } => {
            if method != Method::GET {
                return Err(ApiError::method_not_allowed("GET"));
            }
            Ok(json_response(&devices_json(app.backend.devices(&user))))
        }
        Route::Resources { user, device } => {
            if method != Method::GET {
                return Err(ApiError::method_not_allowed("GET"));
            }
            if websocket::is_upgrade(request.headers()) {
                let accept = websocket::accept_key(request.headers())?;
                require_online(&app, &user, &device)?;
                return websocket::multi(ctx, &mut request, accept, user, device);
            }
            require_online(&app, &user, &device)?;
            let answer = app.backend.describe(&user, &device, None);
            answer_response(&app, answer).await
        }
        Route::Resource {
            user,
            device,
            resource,
        } => match method {
            Method::GET if websocket::is_upgrade(request.headers()) => {
                let interval = interval_param(&app, query)?;
                let accept = websocket::accept_key(request.headers())?;
                require_online(&app, &user, &device)?;
                websocket::single(ctx, &mut request, accept, user, device, resource, interval).await
            }
            Method::GET if wants_sse(request.headers()) => {
                let interval = interval_param(&app, query)?;
                require_online(&app, &user, &device)?;
                sse::open(&app, user, device, resource, interval).await
            }
            Method::GET => {
                require_online(&app, &user, &device)?;
                run(&app, &user, &device, &resource, None).await
            }
            Method::POST => {
                require_online(&app, &user, &device)?;
                let (parts, body) = request.into_parts();
                let input = read_input(&parts.headers, body, app.limits.max_body).await?;
                run(&app, &user, &device, &resource, input).await
            }
            _ => Err(ApiError::method_not_allowed("GET, POST")),
        },
        Route::BucketData { user, bucket } => {
            if method != Method::GET {
                return Err(ApiError::method_not_allowed("GET"));
            }
            data::records(&app, &user, &bucket, query).await
        }
        Route::Recorders { user } => match method {
            Method::GET => data::list_recorders(&app, &user).await,
            Method::POST => data::add_recorder(&app, &user, request).await,
            _ => Err(ApiError::method_not_allowed("GET, POST")),
        },
        Route::Recorder { user, id } => {
            if method != Method::DELETE {
                return Err(ApiError::method_not_allowed("DELETE"));
            }
            data::remove_recorder(&app, &user, &id).await
        }
    }
}

fn interval_param(app: &App, query: Option<&str>) -> Result<u32, ApiError> {
    let interval = query_param(query, "interval")?;
    parse_interval(interval.as_deref(), app.limits.max_interval_s)
}

/// 404 unless the device is registered and connected (§8.2, §8.4).
fn require_online(app: &App, user: &str, device: &str) -> Result<(), ApiError> {
    match app.backend.device_status(user, device) {
        DeviceStatus::Online => Ok(()),
        DeviceStatus::Offline => Err(ApiError::not_found(DEVICE_OFFLINE)),
        DeviceStatus::Unknown => Err(ApiError::not_found(UNKNOWN_DEVICE)),
    }
}

async fn run(
    app: &App,
    user: &str,
    device: &str,
    resource: &str,
    input: Option<Value>,
) -> Result<Response<ApiBody>, ApiError> {
    let answer = app.backend.run(user, device, resource, input);
    answer_response(app, answer).await
}

/// Waits (bounded) for a RUN / DESCRIBE answer: OK → 200 with the payload's JSON (`null`
/// without one), ERROR → §8.5, failures → 404 / 503 / 504.
async fn answer_response(
    app: &App,
    answer: BoxFuture<Option<RequestResult>>,
) -> Result<Response<ApiBody>, ApiError> {
    let timeout = app.limits.answer_timeout;
    let answer = async { Some(answer.await) }
        .or(async {
            Timer::after(timeout).await;
            None
        })
        .await;
    match answer {
        None => Err(ApiError::timeout()),
        Some(None) => Err(ApiError::unavailable(SHUTTING_DOWN)),
        Some(Some(Ok(Answer::Ok { payload, .. }))) => {
            Ok(json_response(&value_json(payload.as_ref())))
        }
        Some(Some(Ok(Answer::Error(info)))) => Err(ApiError::from_device(&info)),
        Some(Some(Err(failure))) => Err(ApiError::from_request_failure(&failure)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(path: &str) -> String {
        match parse_path(path).unwrap() {
            Route::Resource { resource, .. } => resource,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn routes() {
        assert_eq!(
            parse_path("/v3/users/alice/devices").unwrap(),
            Route::Devices {
                user: "alice".into()
            }
        );
        assert_eq!(
            parse_path("/v3/users/al%20ice/devices/dev01/resources").unwrap(),
            Route::Resources {
                user: "al ice".into(),
                device: "dev01".into()
            }
        );
        assert_eq!(
            resource("/v3/users/alice/devices/dev01/resources/temp"),
            "temp"
        );
        assert_eq!(
            resource("/v3/users/alice/devices/dev01/resources/$fs/get/a.txt"),
            "$fs/get/a.txt"
        );
        assert_eq!(
            resource("/v3/users/alice/devices/dev01/resources/%24fs/get%2Fa%20b.txt"),
            "$fs/get/a b.txt"
        );
        for path in [
            "/",
            "",
            "/v3",
            "/v3/users/alice",
            "/v2/users/alice/devices",
            "/v3/users/alice/devices/dev01",
            "/v3/users/alice/devices/dev01/resource",
            "/v3/users/alice/devices/dev01/resources/",
            "/v3/users/alice/things",
        ] {
            let e = parse_path(path).unwrap_err();
            assert_eq!(e.status.as_u16(), 404, "{path}");
        }
        assert_eq!(
            parse_path("/v3/users/alice/buckets/b1/data").unwrap(),
            Route::BucketData {
                user: "alice".into(),
                bucket: "b1".into()
            }
        );
        assert_eq!(
            parse_path("/v3/users/alice/recorders").unwrap(),
            Route::Recorders {
                user: "alice".into()
            }
        );
        assert_eq!(
            parse_path("/v3/users/alice/recorders/12").unwrap(),
            Route::Recorder {
                user: "alice".into(),
                id: "12".into()
            }
        );
        for path in [
            "/v3/users/alice/buckets",
            "/v3/users/alice/buckets/b1",
            "/v3/users/alice/buckets/b1/records",
            "/v3/users/alice/buckets/b1/data/x",
            "/v3/users/alice/recorders/1/x",
            "/v3/users/buckets",
        ] {
            let e = parse_path(path).unwrap_err();
            assert_eq!(e.status.as_u16(), 404, "{path}");
        }
        let e = parse_path("/v3/users/al%zzice/devices").unwrap_err();
        assert_eq!(e.status.as_u16(), 400);
        let e = parse_path("/v3/users/%ff/devices").unwrap_err();
        assert_eq!(e.status.as_u16(), 400);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb+c%25").unwrap(), "a/b+c%");
        assert_eq!(percent_decode("%C3%A9").unwrap(), "é");
        assert!(percent_decode("%").is_err());
        assert!(percent_decode("%4").is_err());
        assert!(percent_decode("%+1").is_err());
    }

    #[test]
    fn query_parameters() {
        let q = Some("interval=5&authorization=a%2Bb&interval=7");
        assert_eq!(query_param(q, "interval").unwrap().as_deref(), Some("5"));
        assert_eq!(
            query_param(q, "authorization").unwrap().as_deref(),
            Some("a+b")
        );
        assert_eq!(query_param(q, "other").unwrap(), None);
        assert_eq!(query_param(None, "interval").unwrap(), None);
        assert_eq!(
            query_param(Some("interval"), "interval")
                .unwrap()
                .as_deref(),
            Some("")
        );
    }

    #[test]
    fn intervals() {
        assert_eq!(parse_interval(None, 86400).unwrap(), 0);
        assert_eq!(parse_interval(Some("0"), 86400).unwrap(), 0);
        assert_eq!(parse_interval(Some("86400"), 86400).unwrap(), 86400);
        for bad in ["", "86401", "-1", "+5", "1.5", "5s", " 5", "99999999999"] {
            assert_eq!(
                parse_interval(Some(bad), 86400)
                    .unwrap_err()
                    .status
                    .as_u16(),
                400,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn header_tokens() {
        let mut h = HeaderMap::new();
        h.insert(
            hyper::header::CONNECTION,
            hyper::header::HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(header_has_token(&h, hyper::header::CONNECTION, "upgrade"));
        assert!(!header_has_token(&h, hyper::header::UPGRADE, "websocket"));
    }
}
