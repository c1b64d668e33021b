//! API token authentication (spec §8.1).
//!
//! A token comes as `Authorization: Bearer <token>` or, because browsers cannot set headers on
//! WebSockets or EventSource, as `?authorization=<token>`; the header wins when both are present.
//! An `Authorization` header with another scheme carries no bearer token and is ignored, so that
//! a proxy's own credentials do not hide a query token.

use hyper::header::{AUTHORIZATION, HeaderMap};

use super::backend::Backend;
use super::errors::ApiError;

/// The bearer token of a request: the header's, else the query's.
pub(crate) fn token<'a>(headers: &'a HeaderMap, query_token: Option<&'a str>) -> Option<&'a str> {
    headers
        .get_all(AUTHORIZATION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(bearer)
        .or(query_token.filter(|t| !t.is_empty()))
}

/// The token of an `Authorization` value with the `Bearer` scheme (case-insensitive, RFC 9110).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Checks that the request's token belongs to `user`: none or unknown → 401, another user's → 403.
pub(crate) fn authorize(
    backend: &dyn Backend,
    headers: &HeaderMap,
    query_token: Option<&str>,
    user: &str,
) -> Result<(), ApiError> {
    let Some(token) = token(headers, query_token) else {
        return Err(ApiError::unauthorized("missing API token"));
    };
    match backend.user_for_token(token) {
        None => Err(ApiError::unauthorized("unknown API token")),
        Some(owner) if owner == user => Ok(()),
        Some(_) => Err(ApiError::forbidden(
            "the API token does not give access to this user",
        )),
    }
}

#[cfg(test)]
mod tests {
    use hyper::header::HeaderValue;

    use super::*;

    fn headers(values: &[&'static str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(AUTHORIZATION, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn header_wins_over_query() {
        assert_eq!(token(&headers(&["Bearer abc"]), Some("xyz")), Some("abc"));
        assert_eq!(token(&headers(&["bearer  abc "]), None), Some("abc"));
        assert_eq!(token(&headers(&[]), Some("xyz")), Some("xyz"));
    }

    #[test]
    fn other_schemes_and_empty_tokens_are_ignored() {
        assert_eq!(
            token(&headers(&["Basic YWxpY2U6eA=="]), Some("q")),
            Some("q")
        );
        assert_eq!(token(&headers(&["Bearer "]), None), None);
        assert_eq!(token(&headers(&["Bearer"]), Some("")), None);
        assert_eq!(
            token(&headers(&["Basic x", "Bearer second"]), None),
            Some("second")
        );
    }
}
