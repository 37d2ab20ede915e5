//! OAuth 2.0 client credentials for `kind: rest`: one token per source, fetched when
//! needed, reused until shortly before it expires, and dropped when the API answers 401
//! so that the next request fetches a fresh one.

use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde::Deserialize;

use super::config::OAuth2;
use super::http::{Deadline, Transport};
use super::raw::ClientAuth;
use crate::kinds::SourceError;
use crate::secret::Secret;

/// Refresh this long before expiry (or a tenth of the lifetime, when that is shorter), so a
/// token does not expire between being handed out and reaching the API.
const EXPIRY_MARGIN: Duration = Duration::from_secs(30);

#[derive(Clone)]
struct Token {
    value: Secret,
    /// `None` when the server gave no lifetime: kept until the API refuses it.
    fresh_until: Option<Instant>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct TokenError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// The token of one source.
pub struct TokenCache {
    config: OAuth2,
    // A tokio Mutex, held while the token endpoint answers: datasets fetching at the same
    // time wait for one refresh instead of each asking for a token of its own.
    slot: tokio::sync::Mutex<Option<Token>>,
}

impl TokenCache {
    pub fn new(config: OAuth2) -> TokenCache {
        TokenCache {
            config,
            slot: tokio::sync::Mutex::new(None),
        }
    }

    /// A token that is not about to expire, fetching one when needed.
    pub async fn token(
        &self,
        transport: &Transport,
        deadline: Deadline,
        clean: &(dyn Fn(String) -> String + Sync),
    ) -> Result<Secret, SourceError> {
        let mut slot = self.slot.lock().await;
        if let Some(token) = slot.as_ref() {
            if token.fresh_until.is_none_or(|until| Instant::now() < until) {
                return Ok(token.value.clone());
            }
        }
        let token = self.request(transport, deadline, clean).await?;
        let value = token.value.clone();
        *slot = Some(token);
        Ok(value)
    }

    /// Forgets `used` after the API refused it (unless another request already replaced it).
    pub async fn invalidate(&self, used: &Secret) {
        let mut slot = self.slot.lock().await;
        if slot.as_ref().is_some_and(|token| &token.value == used) {
            *slot = None;
        }
    }

    async fn request(
        &self,
        transport: &Transport,
        deadline: Deadline,
        clean: &(dyn Fn(String) -> String + Sync),
    ) -> Result<Token, SourceError> {
        let config = &self.config;
        // Built in a block: the serializer is not Send and must not live across an await.
        let form = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "client_credentials");
            if let Some(scope) = &config.scope {
                form.append_pair("scope", scope);
            }
            if config.client_auth == ClientAuth::Body {
                form.append_pair("client_id", &config.client_id);
                form.append_pair("client_secret", config.client_secret.expose());
            }
            form.finish()
        };
        let endpoint = format!(
            "the token endpoint {}",
            config.token_url[..url::Position::AfterPath].to_owned()
        );
        let asked = Instant::now();
        let reply = transport
            .send(
                || {
                    let request = transport
                        .client
                        .post(config.token_url.clone())
                        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                        .header(ACCEPT, "application/json")
                        .body(form.clone());
                    match config.client_auth {
                        ClientAuth::Basic => request
                            .basic_auth(&config.client_id, Some(config.client_secret.expose())),
                        ClientAuth::Body => request,
                    }
                },
                deadline,
                clean,
            )
            .await
            .map_err(|err| match err {
                SourceError::Timeout(limit) => SourceError::Timeout(limit),
                other => SourceError::Auth(format!("{endpoint} could not be used: {other}")),
            })?;
        if !reply.status.is_success() {
            let detail = match serde_json::from_slice::<TokenError>(&reply.body) {
                Ok(TokenError {
                    error,
                    error_description: Some(description),
                }) => format!("{error} ({description})"),
                Ok(TokenError { error, .. }) => error,
                Err(_) => reply.snippet(),
            };
            return Err(SourceError::Auth(clean(format!(
                "{endpoint} refused to issue a token (HTTP {}): {detail}",
                reply.status.as_u16()
            ))));
        }
        let answer: TokenAnswer = serde_json::from_slice(&reply.body).map_err(|err| {
            SourceError::Auth(format!(
                "{endpoint} answered without a usable access_token: {err}"
            ))
        })?;
        if let Some(kind) = &answer.token_type {
            if !kind.eq_ignore_ascii_case("bearer") {
                return Err(SourceError::Auth(format!(
                    "{endpoint} issued a `{kind}` token; only bearer tokens are supported"
                )));
            }
        }
        if answer.access_token.is_empty() {
            return Err(SourceError::Auth(format!(
                "{endpoint} answered with an empty access_token"
            )));
        }
        let lifetime = match &answer.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_f64(),
            Some(serde_json::Value::String(text)) => text.trim().parse().ok(),
            _ => None,
        }
        .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
        .map(Duration::from_secs_f64);
        Ok(Token {
            value: Secret::new(answer.access_token),
            // Counted from when it was asked for: the server's clock started no earlier.
            fresh_until: lifetime
                .map(|lifetime| asked + lifetime - EXPIRY_MARGIN.min(lifetime / 10)),
        })
    }
}
