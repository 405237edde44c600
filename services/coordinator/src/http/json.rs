//! JSON in and out: request bodies parsed with errors that name the field
//! at fault, and JSON replies.

use serde::de::DeserializeOwned;
use warp::reply::{Reply, Response};

use super::error::ApiError;

/// What every handler answers: a response, or an error that becomes one.
pub type Handled = Result<Response, ApiError>;

pub fn reply<T: serde::Serialize>(body: &T) -> Handled {
    Ok(warp::reply::json(body).into_response())
}

/// Parses a JSON body; the message names what was wrong and where.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let invalid =
        |message: String| ApiError::bad_request(format!("invalid request body: {message}"));
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    // serde_json alone names the field only when it is missing; a value of
    // the wrong type would be reported by line and column.
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            invalid(inner.to_string())
        } else {
            invalid(format!("{path}: {inner}"))
        }
    })?;
    deserializer.end().map_err(|e| invalid(e.to_string()))?;
    Ok(value)
}

/// Like `parse`, but an empty body means the defaults.
pub fn parse_or_default<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        parse(body)
    }
}
