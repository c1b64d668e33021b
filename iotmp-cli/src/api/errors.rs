//! HTTP errors of the API (spec §8.1) and how device answers and failures map onto them (§8.5).
//!
//! Every error response is `Content-Type: application/json` with the body `{"error": "<text>"}`.
//! The texts named by the spec ("unknown device", "device offline", "unknown resource", "device
//! timeout", "device error") are used verbatim: clients may match on them.

use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use hyper::{Response, StatusCode};
use iotmp_proto::CommandError;
use iotmp_proto::broker::RequestFailure;
use iotmp_proto::dialect::ErrorInfo;
use iotmp_proto::session::StreamEnd;

use super::backend::SubscribeFailure;
use super::json::{ApiBody, full};

/// Text of a 404 for a device that is not registered.
pub(crate) const UNKNOWN_DEVICE: &str = "unknown device";
/// Text of a 404 for a registered device that is not connected.
pub(crate) const DEVICE_OFFLINE: &str = "device offline";
/// Text of a 404 for a bare device ERROR (§8.5 rule 2).
pub(crate) const UNKNOWN_RESOURCE: &str = "unknown resource";
/// Text of a 504.
pub(crate) const DEVICE_TIMEOUT: &str = "device timeout";
/// Text of a device ERROR without a message.
pub(crate) const DEVICE_ERROR: &str = "device error";
/// Text of a 404 for a path the API does not serve.
pub(crate) const UNKNOWN_ROUTE: &str = "unknown route";
/// Text of a 503 while the server stops.
pub(crate) const SHUTTING_DOWN: &str = "server shutting down";

/// An error response: status, text, and the headers some statuses need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) text: String,
    /// `Allow` of a 405.
    allow: Option<&'static str>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, text: impl Into<String>) -> Self {
        ApiError {
            status,
            text: text.into(),
            allow: None,
        }
    }

    pub(crate) fn bad_request(text: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, text)
    }

    /// 401; the response carries `WWW-Authenticate: Bearer`.
    pub(crate) fn unauthorized(text: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, text)
    }

    pub(crate) fn forbidden(text: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, text)
    }

    pub(crate) fn not_found(text: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, text)
    }

    pub(crate) fn unknown_route() -> Self {
        ApiError::not_found(UNKNOWN_ROUTE)
    }

    /// 405 listing the methods the path accepts.
    pub(crate) fn method_not_allowed(allow: &'static str) -> Self {
        ApiError {
            allow: Some(allow),
            ..ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("method not allowed (allowed: {allow})"),
            )
        }
    }

    pub(crate) fn timeout() -> Self {
        ApiError::new(StatusCode::GATEWAY_TIMEOUT, DEVICE_TIMEOUT)
    }

    pub(crate) fn unavailable(text: impl Into<String>) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, text)
    }

    pub(crate) fn internal(text: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, text)
    }

    /// A device's ERROR answer (spec §8.5): a code in 400..=599 is the status; no code and no
    /// payload is the legacy "unknown resource" (404); anything else is 500.
    pub(crate) fn from_device(info: &ErrorInfo) -> Self {
        let text = || info.text.clone().unwrap_or_else(|| DEVICE_ERROR.to_owned());
        match info.code {
            Some(code @ 400..=599) => {
                let status = u16::try_from(code)
                    .ok()
                    .and_then(|c| StatusCode::from_u16(c).ok())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                ApiError::new(status, text())
            }
            None if !info.has_payload => ApiError::not_found(UNKNOWN_RESOURCE),
            _ => ApiError::internal(text()),
        }
    }

    /// A RUN or DESCRIBE that got no answer from the device.
    pub(crate) fn from_request_failure(failure: &RequestFailure) -> Self {
        match failure {
            RequestFailure::Offline => ApiError::not_found(DEVICE_OFFLINE),
            RequestFailure::Timeout => ApiError::timeout(),
            // The device went away while we waited: it is offline now.
            RequestFailure::ConnectionLost => ApiError::not_found(DEVICE_OFFLINE),
            RequestFailure::Refused(e) => ApiError::from_command_error(e),
            other => ApiError::internal(other.to_string()),
        }
    }

    /// A command the session refused locally (nothing was sent).
    fn from_command_error(e: &CommandError) -> Self {
        match e {
            // Per-connection limits (spec §6.4, §7.1).
            CommandError::TooManyRequests
            | CommandError::TooManyStreams
            | CommandError::NoStreamId
            | CommandError::OutputFull => ApiError::unavailable(e.to_string()),
            // The connection is closing or not accepted yet: for the client, offline.
            CommandError::Closed | CommandError::NotEstablished => {
                ApiError::not_found(DEVICE_OFFLINE)
            }
            // The input has no encoding in the device's dialect.
            CommandError::Encode(_) => ApiError::bad_request(e.to_string()),
            other => ApiError::internal(other.to_string()),
        }
    }

    /// A sink that could not be established (spec §8.4).
    pub(crate) fn from_subscribe_failure(failure: &SubscribeFailure) -> Self {
        match failure {
            SubscribeFailure::Device(StreamEnd::Refused(info)) => ApiError::from_device(info),
            SubscribeFailure::Device(StreamEnd::TimedOut) => ApiError::timeout(),
            SubscribeFailure::Device(StreamEnd::ConnectionEnded) | SubscribeFailure::Offline => {
                ApiError::not_found(DEVICE_OFFLINE)
            }
            SubscribeFailure::Device(StreamEnd::Stopped) => {
                ApiError::internal("the stream was stopped before the device answered")
            }
            SubscribeFailure::Limit(text) => ApiError::unavailable(text.clone()),
            SubscribeFailure::Unavailable => ApiError::unavailable(SHUTTING_DOWN),
        }
    }

    /// The response: status, JSON `{"error": text}`, and `WWW-Authenticate` / `Allow` as needed.
    pub(crate) fn into_response(self) -> Response<ApiBody> {
        let body = serde_json::json!({ "error": self.text }).to_string();
        let mut response = Response::new(full(body));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(allow) = self.allow {
            headers.insert(ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(code: Option<u64>, text: Option<&str>) -> ErrorInfo {
        ErrorInfo {
            code,
            has_payload: text.is_some(),
            text: text.map(str::to_owned),
        }
    }

    #[test]
    fn device_errors_map_as_in_8_5() {
        let e = ApiError::from_device(&info(Some(503), Some("busy")));
        assert_eq!((e.status.as_u16(), e.text.as_str()), (503, "busy"));
        let e = ApiError::from_device(&info(Some(400), None));
        assert_eq!((e.status.as_u16(), e.text.as_str()), (400, DEVICE_ERROR));
        let e = ApiError::from_device(&info(None, None));
        assert_eq!(
            (e.status.as_u16(), e.text.as_str()),
            (404, UNKNOWN_RESOURCE)
        );
        let e = ApiError::from_device(&info(None, Some("sensor failed")));
        assert_eq!((e.status.as_u16(), e.text.as_str()), (500, "sensor failed"));
        // Codes outside 400..=599 are not usable as statuses.
        let e = ApiError::from_device(&info(Some(7), Some("odd")));
        assert_eq!((e.status.as_u16(), e.text.as_str()), (500, "odd"));
        let e = ApiError::from_device(&info(Some(600), None));
        assert_eq!((e.status.as_u16(), e.text.as_str()), (500, DEVICE_ERROR));
        let e = ApiError::from_device(&info(Some(u64::MAX), None));
        assert_eq!(e.status.as_u16(), 500);
    }

    #[test]
    fn failures_map_to_statuses() {
        let status = |f: RequestFailure| ApiError::from_request_failure(&f).status.as_u16();
        assert_eq!(status(RequestFailure::Offline), 404);
        assert_eq!(status(RequestFailure::Timeout), 504);
        assert_eq!(status(RequestFailure::ConnectionLost), 404);
        assert_eq!(
            status(RequestFailure::Refused(CommandError::TooManyRequests)),
            503
        );
        assert_eq!(
            status(RequestFailure::Refused(CommandError::TooManyStreams)),
            503
        );
        assert_eq!(status(RequestFailure::Refused(CommandError::Closed)), 404);
    }

    #[test]
    fn subscribe_failures_map_to_statuses() {
        let status = |f: SubscribeFailure| ApiError::from_subscribe_failure(&f).status.as_u16();
        assert_eq!(
            status(SubscribeFailure::Device(StreamEnd::Refused(info(
                Some(400),
                Some("resource cannot be streamed")
            )))),
            400
        );
        assert_eq!(status(SubscribeFailure::Device(StreamEnd::TimedOut)), 504);
        assert_eq!(
            status(SubscribeFailure::Device(StreamEnd::ConnectionEnded)),
            404
        );
        assert_eq!(status(SubscribeFailure::Limit("too many".into())), 503);
        assert_eq!(status(SubscribeFailure::Unavailable), 503);
    }

    #[test]
    fn responses_are_json_with_the_needed_headers() {
        let r = ApiError::unauthorized("missing token").into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(r.headers()[WWW_AUTHENTICATE], "Bearer");
        assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
        let r = ApiError::method_not_allowed("GET, POST").into_response();
        assert_eq!(r.headers()[ALLOW], "GET, POST");
    }
}
