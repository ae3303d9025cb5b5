//! U+0000 is refused at the edge, with one 400 on either storage engine: PostgreSQL cannot
//! store it in TEXT, so every string a request carries (path, query, JSON body, decoded
//! token claims) is checked here before anything reaches the store.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use memchr::memmem;
use serde_json::{Map, Value};

use super::error::ApiError;

/// The refusal of a string that carries U+0000.
pub fn refused(place: &str) -> ApiError {
    ApiError::BadRequest(format!("{place}: strings may not contain U+0000"))
}

/// Refuses a request whose path or query carries `%00` (the only way a URI names U+0000:
/// a raw NUL byte is not a URI character).
pub async fn refuse_in_uri(request: Request, next: Next) -> Result<Response, ApiError> {
    let uri = request.uri();
    if uri.path().contains("%00") {
        return Err(refused("path (%00)"));
    }
    if uri.query().is_some_and(|q| q.contains("%00")) {
        return Err(refused("query (%00)"));
    }
    Ok(next.run(request).await)
}

/// Refuses JSON text that carries U+0000. JSON can spell it only as the escape `\u0000`
/// (a raw control character is not JSON, and the escape's `u` is lowercase), and that
/// escape is one exactly where an even number of backslashes stands before it. One scan of
/// the bytes, no parsing.
pub fn check_json(json: &[u8], place: &str) -> Result<(), ApiError> {
    let escaped = memmem::find_iter(json, br"\u0000").any(|at| {
        let before = json[..at].iter().rev().take_while(|b| **b == b'\\').count();
        before % 2 == 0
    });
    if escaped {
        return Err(refused(place));
    }
    Ok(())
}

/// Refuses claims (decoded from a token, so not checked with the body) with U+0000 in a
/// member name or a string, at any depth.
pub fn check_claims(claims: &Map<String, Value>) -> Result<(), ApiError> {
    if object_has_nul(claims) {
        return Err(refused("claims"));
    }
    Ok(())
}

fn object_has_nul(object: &Map<String, Value>) -> bool {
    object
        .iter()
        .any(|(name, value)| name.contains('\0') || has_nul(value))
}

fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(object) => object_has_nul(object),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refused_json(text: &str) -> bool {
        check_json(text.as_bytes(), "body").is_err()
    }

    #[test]
    fn the_escape_is_found_where_it_is_one() {
        assert!(refused_json(r#"{"a":"\u0000"}"#));
        assert!(refused_json(r#"{"a":"\u00e5\u0000x"}"#));
        assert!(refused_json(r#"{"\u0000":1}"#));
        assert!(refused_json(r#"["x\\\u0000"]"#), "a backslash, then U+0000");
        assert!(
            !refused_json(r#"{"a":"\\u0000"}"#),
            "a backslash, then `u0000`"
        );
        assert!(!refused_json(r#"{"a":"\\\\u0000"}"#));
        assert!(!refused_json(r#"{"a":"\u0001"}"#));
        assert!(!refused_json(r#"{"a":"u0000","b":"\u00e5"}"#));
        assert!(!refused_json(""));
    }

    #[test]
    fn the_check_agrees_with_the_parser() {
        for text in [
            r#""\u0000""#,
            r#""\\u0000""#,
            r#""\\\u0000""#,
            r#""\\\\u0000""#,
            r#""a\"\u0000""#,
            r#""\u0000\u0000""#,
            r#""\u00000""#,
        ] {
            let parsed: String = serde_json::from_str(text).unwrap();
            assert_eq!(refused_json(text), parsed.contains('\0'), "{text}");
        }
    }

    #[test]
    fn claims_are_checked_at_every_depth_and_in_names() {
        let claims = |v: Value| v.as_object().unwrap().clone();
        assert!(check_claims(&claims(json!({"sub": "a", "x": [1, {"y": "b"}]}))).is_ok());
        assert!(check_claims(&claims(json!({"sub": "a\u{0}"}))).is_err());
        assert!(check_claims(&claims(json!({"x": [1, {"y": "\u{0}"}]}))).is_err());
        assert!(check_claims(&claims(json!({"x": {"\u{0}": 1}}))).is_err());
        let error = check_claims(&claims(json!({"sub": "\u{0}"}))).unwrap_err();
        assert_eq!(error.status_and_code().1, "bad_request");
        assert_eq!(error.to_string(), "claims: strings may not contain U+0000");
    }
}
