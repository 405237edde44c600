//! API errors: every failure becomes `{"error": "..."}` with a status that
//! says whose fault it was. Handlers return them; filters reject with them.

use std::convert::Infallible;

use skyclaw_api::ErrorBody;
use skyclaw_state::Rejection;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};

use crate::failure::Failure;
use crate::membership::MembershipError;
use crate::proposer::{WriteError, MAX_ENTRY_BYTES};

#[derive(Clone, Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds, for `Retry-After` on 503.
    pub retry_after: Option<u32>,
}

impl warp::reject::Reject for ApiError {}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError {
            retry_after: Some(1),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
        }
    }

    pub fn into_response(self) -> Response {
        let body = warp::reply::json(&ErrorBody {
            error: self.message,
        });
        let mut response = warp::reply::with_status(body, self.status).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert("retry-after", seconds.into());
        }
        response
    }
}

impl From<skyclaw_api::limits::Invalid> for ApiError {
    fn from(invalid: skyclaw_api::limits::Invalid) -> ApiError {
        use skyclaw_api::limits::Invalid;
        match invalid {
            Invalid::Shape(message) => ApiError::bad_request(message),
            Invalid::TooLarge(message) => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, message),
        }
    }
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> ApiError {
        match rejection {
            Rejection::Invalid(message) => ApiError::bad_request(message),
            Rejection::NotFound(message) => ApiError::not_found(message),
            Rejection::Conflict(message) | Rejection::StaleLease(message) => {
                ApiError::new(StatusCode::CONFLICT, message)
            }
            Rejection::NotInitialized => ApiError::unavailable(rejection.to_string()),
            Rejection::Forbidden(message) => ApiError::new(StatusCode::FORBIDDEN, message),
        }
    }
}

impl From<WriteError> for ApiError {
    fn from(error: WriteError) -> ApiError {
        match error {
            WriteError::NotLeader {
                leader: Some(leader),
            } => ApiError::unavailable(format!(
                "this node does not lead; the leader is {} at {}",
                leader.name, leader.url
            )),
            WriteError::NotLeader { leader: None } => {
                ApiError::unavailable("no leader is known right now; retry shortly")
            }
            WriteError::Unavailable(message) => ApiError::unavailable(message),
            WriteError::TooLarge { size } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the request would make a raft log entry of {size} bytes, more than the \
                     limit of {} bytes; send it in smaller parts",
                    MAX_ENTRY_BYTES
                ),
            ),
        }
    }
}

impl From<Failure> for ApiError {
    fn from(failure: Failure) -> ApiError {
        match failure {
            Failure::Refused(rejection) => rejection.into(),
            Failure::Unauthenticated(message) => ApiError::new(StatusCode::UNAUTHORIZED, message),
            Failure::Write(error) => error.into(),
            Failure::Gone(message) => ApiError::new(StatusCode::GONE, message),
            Failure::Unavailable(message) => ApiError::unavailable(message),
            Failure::Internal(message) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message),
        }
    }
}

impl From<MembershipError> for ApiError {
    fn from(error: MembershipError) -> ApiError {
        match error {
            MembershipError::Invalid(message) => ApiError::bad_request(message),
            MembershipError::Refused(message) => ApiError::new(StatusCode::CONFLICT, message),
            MembershipError::Unknown(message) => ApiError::not_found(message),
            MembershipError::Write(error) => error.into(),
        }
    }
}

/// Turns filter rejections (unknown route, wrong method, bad auth) into
/// JSON errors. Applied once, outermost.
pub async fn recover(rejection: warp::Rejection) -> Result<Response, Infallible> {
    let error = if let Some(error) = rejection.find::<ApiError>() {
        error.clone()
    } else if rejection.is_not_found() {
        ApiError::not_found("no such route")
    } else if let Some(e) = rejection.find::<warp::reject::InvalidQuery>() {
        ApiError::bad_request(format!("invalid query string: {e}"))
    } else if let Some(e) = rejection.find::<warp::reject::InvalidHeader>() {
        ApiError::bad_request(e.to_string())
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed on this route",
        )
    } else {
        tracing::warn!("unhandled rejection: {rejection:?}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    };
    Ok(error.into_response())
}
