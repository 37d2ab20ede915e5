//! The OpenAPI 3.1 description of the HTTP API, served at `GET /api/openapi.json`. It is
//! generated, not written: each handler's `#[utoipa::path]` annotation gives its path,
//! parameters and answers, the answers' types give their schemas, and utoipa-axum's
//! `routes!` registers a handler with the router and the description in one call, so a
//! route cannot be served without being described.
//!
//! What a route shares with its group is added here rather than on every annotation:
//! [`require_scope`] gives each operation of a guarded group its token scope and its
//! refusals (401, 403, 429), and [`finish`] the request limits every route has (413, 414).

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use bytes::Bytes;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{ObjectBuilder, Schema};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, Header, OpenApi, PathItem, Ref, RefOr, ResponseBuilder, Type};
use utoipa::{Modify, OpenApi as _, PartialSchema, ToSchema};

use super::access::Scope;
use super::error::ErrorBody;

/// The name of the bearer-token security scheme.
const BEARER: &str = "bearer";

/// What the description says before any route: info, tags and the shared components.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Metrics Hub",
        description = "Business metrics from every declared source, merged into one answer \
            in the analytics dashboard's shape, with per-source detail.\n\n\
            Tokens are sent as `Authorization: Bearer TOKEN`; a hub on loopback with no \
            tokens configured asks for none. Every error is \
            `{\"success\": false, \"error\": {\"code\", \"message\"}}`, also the refusals the \
            HTTP edge makes before routing: 400 (not HTTP), 408 (head too slow), 431 \
            (headers too large) and 503 `overloaded` (at the connection cap).",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    tags(
        (name = "metrics", description = "The merged metrics the dashboard draws."),
        (name = "sources", description = "Each source's state, live probes."),
        (name = "admin", description = "What changes state or costs upstream queries: needs the admin scope."),
        (name = "meta", description = "This description."),
        (name = "pages", description = "The built-in dashboard and admin page, and their files: no token needed."),
    ),
    modifiers(&Shared),
)]
struct Base;

/// The description before any route is added: info, tags, the security scheme and the
/// refusals operations refer to.
pub fn base() -> OpenApi {
    Base::openapi()
}

/// The components every guarded or limited operation refers to.
struct Shared;

impl Modify for Shared {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components
            .schemas
            .insert(ErrorBody::name().into_owned(), ErrorBody::schema());
        let mut schemas = Vec::new();
        ErrorBody::schemas(&mut schemas);
        components.schemas.extend(schemas);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token of scope read (admin implies read): from \
                         METRICS_HUB_READ_TOKENS, METRICS_HUB_ADMIN_TOKENS or a tokens file; \
                         `metrics-hub token new` makes one.",
                    ))
                    .build(),
            ),
        );
        for refusal in Refusal::ALL {
            components
                .responses
                .insert(refusal.name().to_owned(), RefOr::T(refusal.response()));
        }
    }
}

/// An answer the hub gives before a handler runs, shared by the operations it applies to.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    Unauthorized,
    Forbidden,
    RateLimited,
    BodyTooLarge,
    UriTooLong,
}

impl Refusal {
    const ALL: [Refusal; 5] = [
        Refusal::Unauthorized,
        Refusal::Forbidden,
        Refusal::RateLimited,
        Refusal::BodyTooLarge,
        Refusal::UriTooLong,
    ];

    fn status(self) -> &'static str {
        match self {
            Refusal::Unauthorized => "401",
            Refusal::Forbidden => "403",
            Refusal::RateLimited => "429",
            Refusal::BodyTooLarge => "413",
            Refusal::UriTooLong => "414",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Refusal::Unauthorized => "Unauthorized",
            Refusal::Forbidden => "Forbidden",
            Refusal::RateLimited => "RateLimited",
            Refusal::BodyTooLarge => "BodyTooLarge",
            Refusal::UriTooLong => "UriTooLong",
        }
    }

    fn response(self) -> utoipa::openapi::Response {
        let (description, header) = match self {
            Refusal::Unauthorized => (
                "`missing_token` (none sent where one is needed) or `invalid_token` (not one \
                 this hub knows).",
                Some(("WWW-Authenticate", "The RFC 6750 challenge.")),
            ),
            Refusal::Forbidden => (
                "`insufficient_scope`: the token's scope is read, the endpoint needs admin.",
                Some(("WWW-Authenticate", "The RFC 6750 challenge.")),
            ),
            Refusal::RateLimited => (
                "`rate_limited`: too many admin requests from this caller (`--admin-rate`).",
                Some(("Retry-After", "Seconds to wait.")),
            ),
            Refusal::BodyTooLarge => ("`body_too_large`: over `--max-body-bytes`.", None),
            Refusal::UriTooLong => (
                "`uri_too_long`: the path and query over `--max-uri-bytes`.",
                None,
            ),
        };
        let mut response = ResponseBuilder::new()
            .description(description)
            .content("application/json", Content::new(Some(error_ref())));
        if let Some((name, what)) = header {
            let mut value = Header::new(string());
            value.description = Some(what.to_owned());
            response = response.header(name, value);
        }
        response.build()
    }

    fn reference(self) -> RefOr<utoipa::openapi::Response> {
        RefOr::Ref(Ref::from_response_name(self.name()))
    }
}

fn error_ref() -> Ref {
    Ref::from_schema_name(ErrorBody::name())
}

fn string() -> Schema {
    ObjectBuilder::new().schema_type(Type::String).into()
}

/// Marks every operation of a group guarded by `scope`: the token it needs and how the
/// guard refuses (no or an unknown token; for admin, a read token and the rate limit).
pub fn require_scope(openapi: &mut OpenApi, scope: Scope) {
    let refusals: &[Refusal] = match scope {
        Scope::Read => &[Refusal::Unauthorized],
        Scope::Admin => &[
            Refusal::Unauthorized,
            Refusal::Forbidden,
            Refusal::RateLimited,
        ],
    };
    for operation in operations(openapi) {
        operation
            .security
            .get_or_insert_with(Vec::new)
            .push(SecurityRequirement::new(BEARER, [scope.as_str()]));
        add_refusals(operation, refusals);
    }
}

/// The description as served: every route's request limits added, and axum's wildcard
/// segments (`{*path}`) written as the plain parameters OpenAPI knows.
pub fn finish(mut openapi: OpenApi) -> OpenApi {
    for operation in operations(&mut openapi) {
        add_refusals(operation, &[Refusal::BodyTooLarge, Refusal::UriTooLong]);
    }
    let paths = std::mem::take(&mut openapi.paths.paths);
    openapi.paths.paths = paths
        .into_iter()
        .map(|(path, item)| (template(&path), item))
        .collect();
    openapi
}

/// An axum route path as an OpenAPI path template: `/assets/{*path}` -> `/assets/{path}`.
pub fn template(route: &str) -> String {
    route.replace("{*", "{")
}

/// Adds refusals an operation does not describe itself.
fn add_refusals(operation: &mut Operation, refusals: &[Refusal]) {
    for refusal in refusals {
        operation
            .responses
            .responses
            .entry(refusal.status().to_owned())
            .or_insert_with(|| refusal.reference());
    }
}

/// Every operation of every path.
fn operations(openapi: &mut OpenApi) -> impl Iterator<Item = &mut Operation> {
    openapi
        .paths
        .paths
        .values_mut()
        .flat_map(|item: &mut PathItem| {
            [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
            ]
            .into_iter()
            .filter_map(Option::as_mut)
        })
}

/// The description serialized once, when the router is built; handed to [`document`] as a
/// request extension, so the description served is the one of the router serving it.
#[derive(Debug, Clone)]
pub struct Served(Bytes);

impl Served {
    pub fn new(openapi: &OpenApi) -> Served {
        // Serializing the description cannot fail: its maps have string keys.
        Served(Bytes::from(serde_json::to_vec(openapi).unwrap_or_default()))
    }
}

/// This description.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "meta",
    responses(
        (status = 200, description = "This description, OpenAPI 3.1.", content_type = "application/json", body = Object),
    ),
)]
pub async fn document(Extension(served): Extension<Served>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], served.0).into_response()
}

#[cfg(test)]
mod tests;
