//! The OpenAPI 3.1 document served at `GET /openapi.json`. It is generated from the handlers'
//! `#[utoipa::path]` attributes as the router registers them (see `http::api`), so a route
//! cannot be served without being documented; the answers every route shares because of the
//! router's layers (408, 413, 414, 431) and the security schemes are added here.

use std::sync::OnceLock;

use axum::http::StatusCode;
use axum::response::Response;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, ResponseBuilder};
use utoipa::{Modify, PartialSchema as _, ToSchema as _};

use super::json::{MessageResponse, json};

/// The document's fixed parts: info, tags, security schemes. Paths come from the router.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "authd",
        description = "A small, fast, secure JWT auth server: `POST /login` takes HTTP Basic \
            credentials and answers a short-lived token (HS256, or EdDSA/ES256 whose public keys are at \
            `/.well-known/jwks.json`); `GET /protected` answers only for a \
            valid one. Every API answer is `application/json`; every API error is \
            `{\"message\": ...}`. The browser pages (`/signin`, `/signout`) answer HTML.",
    ),
    tags(
        (name = "tokens", description = "Logging in and using the token"),
        (name = "sessions", description = "Refresh tokens: rotating and ending sessions"),
        (name = "forward-auth", description = "For reverse proxies"),
        (name = "browser", description = "Pages for people: signing in and out with a session cookie"),
        (name = "keys", description = "Public keys, for services that verify tokens without the secret (EdDSA/ES256 only)"),
        (name = "operations", description = "For operators and tools"),
    ),
    modifiers(&SecuritySchemes),
)]
pub(super) struct ApiDoc;

/// HTTP Basic for `/login`; the `token` query parameter and HTTP Bearer for `/protected`.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some("The user's name and password (RFC 7617)."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "token",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "token",
                "The access token in the query string, as the tutorial sends it. Prefer \
                 `bearer`: query strings end up in logs and browser history.",
            ))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "The access token in `Authorization: Bearer` (RFC 6750).",
                    ))
                    .build(),
            ),
        );
    }
}

/// Answers that any route can give, because of the layers every request goes through: status,
/// component name, description (the limits as the configuration sets them).
fn shared_answers() -> [(StatusCode, &'static str, String); 4] {
    let limits = crate::config::Limits::default();
    [
        (
            StatusCode::REQUEST_TIMEOUT,
            "RequestTimeout",
            "The answer took longer than the request timeout (`AUTHD_REQUEST_TIMEOUT`).".into(),
        ),
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
            format!(
                "The request body is over {} KiB.",
                limits.max_body_bytes / 1024
            ),
        ),
        (
            StatusCode::URI_TOO_LONG,
            "UriTooLong",
            "The request target is too long.".into(),
        ),
        (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "HeadersTooLarge",
            format!(
                "Too many headers, or the target and headers are over {} KiB together.",
                limits.max_head_bytes / 1024
            ),
        ),
    ]
}

/// Adds [`shared_answers`] to the components and to every operation of `doc`.
fn add_shared_answers(doc: &mut OpenApi) {
    let shared = shared_answers();
    let components = doc.components.get_or_insert_with(Default::default);
    for (status, name, description) in &shared {
        let example = serde_json::json!({ "message": status.canonical_reason() });
        components.responses.insert(
            (*name).to_owned(),
            ResponseBuilder::new()
                .description(description.as_str())
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name(MessageResponse::name())))
                        .example(Some(example))
                        .build(),
                )
                .build()
                .into(),
        );
    }
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            add_to_operation(operation);
        }
    }
}

fn add_to_operation(operation: &mut Operation) {
    for (status, name, _) in &shared_answers() {
        operation.responses.responses.insert(
            status.as_u16().to_string(),
            Ref::new(format!("#/components/responses/{name}")).into(),
        );
    }
}

/// The whole document: the router's documented routes plus the shared answers.
pub fn document() -> OpenApi {
    // `/metrics` is documented even when it is served on an address of its own.
    let mut doc = super::api(true).into_openapi();
    add_shared_answers(&mut doc);
    // The schema of `{"message": ...}` is referenced by the shared answers even when no route
    // names it (it always is today; this keeps the document valid if that changes).
    if let Some(components) = doc.components.as_mut() {
        components
            .schemas
            .entry(MessageResponse::name().into_owned())
            .or_insert_with(MessageResponse::schema);
    }
    doc
}

/// The document as served, computed once.
fn served() -> &'static serde_json::Value {
    static DOC: OnceLock<serde_json::Value> = OnceLock::new();
    DOC.get_or_init(|| serde_json::to_value(document()).unwrap_or_default())
}

/// The OpenAPI document of this server.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    summary = "This OpenAPI 3.1 document",
    responses((status = 200, description = "The document.", body = Object)),
)]
pub(super) async fn openapi_json() -> Response {
    json(StatusCode::OK, served())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_lists_the_shared_answers_and_they_resolve() {
        let doc = serde_json::to_value(document()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().unwrap();
        assert!(!paths.is_empty());
        for (path, item) in paths {
            for (method, op) in item.as_object().unwrap() {
                for (status, name, _) in &shared_answers() {
                    let r = &op["responses"][status.as_u16().to_string()]["$ref"];
                    assert_eq!(
                        r,
                        &format!("#/components/responses/{name}"),
                        "{method} {path}"
                    );
                    assert!(doc["components"]["responses"][name].is_object());
                }
            }
        }
        assert!(doc["components"]["schemas"]["MessageResponse"].is_object());
    }
}
