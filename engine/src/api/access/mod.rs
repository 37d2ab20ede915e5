//! Who may call what. Two scopes ([`Scope`]): read (metrics, sources, health, pages) and
//! admin (anything that changes state or costs upstream queries). A caller proves a
//! scope with `Authorization: Bearer TOKEN` ([`tokens`]), or through a trusted reverse
//! proxy that authenticated the user and names them in a header.
//!
//! The defaults are safe without reading a manual: on a loopback address with no tokens
//! configured everything is open, as for a developer; anywhere else the hub does not
//! start without an admin token unless anonymous reads are asked for, and admin
//! endpoints are never anonymous there. Refusals are JSON (`missing_token`,
//! `invalid_token`, `insufficient_scope`) with `WWW-Authenticate`; admin requests are
//! rate limited per caller ([`rate`]).

pub mod proxy;
pub mod rate;
pub mod tokens;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub use proxy::TrustedProxy;
pub use rate::Rate;
pub use tokens::{Scope, TokenStore};

use super::ApiError;
use rate::RateLimiter;

/// Who is calling, as far as the hub knows; its name goes into the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No credentials, where that is allowed.
    Anonymous,
    /// A token, by name.
    Token { name: String, scope: Scope },
    /// A user named by a trusted proxy.
    Proxy { user: String, scope: Scope },
}

impl Caller {
    /// The name logs and rate limits use.
    pub fn name(&self) -> &str {
        match self {
            Caller::Anonymous => "anonymous",
            Caller::Token { name, .. } => name,
            Caller::Proxy { user, .. } => user,
        }
    }

    fn scope(&self) -> Option<Scope> {
        match self {
            Caller::Anonymous => None,
            Caller::Token { scope, .. } | Caller::Proxy { scope, .. } => Some(*scope),
        }
    }
}

/// The access rules of one running hub.
#[derive(Debug)]
pub struct Access {
    tokens: TokenStore,
    /// Everything open: loopback with nothing configured.
    open: bool,
    anonymous_read: bool,
    public_health: bool,
    proxy: Option<TrustedProxy>,
    admin_rate: RateLimiter,
}

/// What `serve` was told about access.
#[derive(Debug, Clone, Default)]
pub struct AccessSettings {
    pub tokens: TokenStore,
    pub allow_anonymous_read: bool,
    pub public_health: bool,
    pub proxy: Option<TrustedProxy>,
    pub admin_rate: Option<Rate>,
}

/// Why the hub refuses to start with these settings.
#[derive(Debug, thiserror::Error)]
#[error("listening on {listen} needs an admin token: set METRICS_HUB_ADMIN_TOKENS or --tokens-file (`metrics-hub token new --scope admin --name NAME` makes one), or pass --allow-anonymous-read to serve reads without one (admin endpoints then stay closed)")]
pub struct UnsafeDefaults {
    listen: SocketAddr,
}

impl Access {
    /// Everything open, as on loopback with no tokens (tests and the demo).
    pub fn open() -> Access {
        Access::from_settings(AccessSettings::default(), true)
    }

    /// The rules for a hub listening on `listen`.
    pub fn for_listener(
        listen: SocketAddr,
        settings: AccessSettings,
    ) -> Result<Access, UnsafeDefaults> {
        let nothing_configured = settings.tokens.is_empty() && settings.proxy.is_none();
        let loopback = listen.ip().is_loopback();
        if !loopback
            && !settings.tokens.has_admin()
            && settings.proxy.is_none()
            && !settings.allow_anonymous_read
        {
            return Err(UnsafeDefaults { listen });
        }
        Ok(Access::from_settings(
            settings,
            loopback && nothing_configured,
        ))
    }

    fn from_settings(settings: AccessSettings, open: bool) -> Access {
        Access {
            tokens: settings.tokens,
            open,
            anonymous_read: settings.allow_anonymous_read,
            public_health: settings.public_health,
            proxy: settings.proxy,
            admin_rate: RateLimiter::new(settings.admin_rate.unwrap_or_default()),
        }
    }

    /// Whether anything is checked at all.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Who presents `headers` from `peer`; `Err` for a token that is not known.
    fn identify(&self, headers: &HeaderMap, peer: IpAddr) -> Result<Caller, ApiError> {
        if let Some(caller) = self.proxy.as_ref().and_then(|p| p.caller(headers, peer)) {
            return Ok(caller);
        }
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Ok(Caller::Anonymous);
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        match token.and_then(|t| self.tokens.verify(t)) {
            Some(token) => Ok(Caller::Token {
                name: token.name.clone(),
                scope: token.scope,
            }),
            None => Err(challenge(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the token is not one this hub knows: check it, or ask an admin for a new one",
                "error=\"invalid_token\"",
            )),
        }
    }

    /// Lets `caller` through for `needed`, or says why not.
    fn authorize(&self, caller: &Caller, needed: Scope, path: &str) -> Result<(), ApiError> {
        let anonymous_ok = match needed {
            Scope::Read => self.anonymous_read || (self.public_health && path == "/api/health"),
            Scope::Admin => false,
        };
        match caller.scope() {
            Some(scope) if scope >= needed => Ok(()),
            Some(_) => Err(challenge(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                "this endpoint needs a token with the admin scope",
                "error=\"insufficient_scope\", scope=\"admin\"",
            )),
            None if anonymous_ok => Ok(()),
            None => Err(challenge(
                StatusCode::UNAUTHORIZED,
                "missing_token",
                format!("this endpoint needs a token with the {needed} scope: send Authorization: Bearer TOKEN"),
                "",
            )),
        }
    }
}

/// A 401 or 403 with the `WWW-Authenticate` challenge of RFC 6750.
fn challenge(
    status: StatusCode,
    code: &'static str,
    message: impl Into<String>,
    detail: &str,
) -> ApiError {
    let value = if detail.is_empty() {
        "Bearer realm=\"metrics-hub\"".to_owned()
    } else {
        format!("Bearer realm=\"metrics-hub\", {detail}")
    };
    ApiError::new(status, code, message).with_header(header::WWW_AUTHENTICATE, &value)
}

/// The middleware of a route group: identifies the caller, rate-limits admin requests,
/// checks the scope, and leaves the [`Caller`] in the request for handlers and logs.
pub async fn require(
    State((access, needed)): State<(Arc<Access>, Scope)>,
    mut request: Request,
    next: Next,
) -> Response {
    if access.open {
        request.extensions_mut().insert(Caller::Anonymous);
        return next.run(request).await;
    }
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([127, 0, 0, 1]), |info| info.0.ip());
    let caller = match access.identify(request.headers(), peer) {
        Ok(caller) => caller,
        Err(refusal) => return refusal.into_response(),
    };
    if needed == Scope::Admin {
        let key = match &caller {
            Caller::Anonymous => peer.to_string(),
            other => other.name().to_owned(),
        };
        if let Err(wait) = access.admin_rate.check(&key) {
            tracing::warn!(caller = %key, "admin request rate limited");
            return ApiError::retry_after(StatusCode::TOO_MANY_REQUESTS, wait.as_secs())
                .into_response();
        }
    }
    if let Err(refusal) = access.authorize(&caller, needed, request.uri().path()) {
        tracing::debug!(
            caller = caller.name(),
            code = refusal.code(),
            "request refused"
        );
        return refusal.into_response();
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

#[cfg(test)]
mod tests;
