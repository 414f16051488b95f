//! The token check as an axum extractor: what the tutorial's `token_required` decorator does.
//! A handler that takes [`Authenticated`] runs only for a valid token; otherwise the request is
//! answered 403 "Token is missing!" or "Token is invalid!".

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;

use super::error::ApiError;
use crate::tokens::{self, Claims, TokenKeys, VerifyError};
use crate::transport::{PresentedToken, find_token};

/// The verified claims of the request's access token, from `?token=` or `Authorization: Bearer`.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Claims);

impl<S> FromRequestParts<S> for Authenticated
where
    Arc<TokenKeys>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let keys = Arc::<TokenKeys>::from_ref(state);
        let authorization = parts
            .headers
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        match find_token(parts.uri.query(), authorization) {
            PresentedToken::Missing => Err(ApiError::TokenMissing),
            PresentedToken::Conflicting => Err(ApiError::TokenInvalid),
            PresentedToken::Token(token) => match keys.verify(&token, tokens::now()) {
                Ok(claims) => Ok(Self(claims)),
                Err(VerifyError::Expired | VerifyError::Invalid) => Err(ApiError::TokenInvalid),
            },
        }
    }
}
