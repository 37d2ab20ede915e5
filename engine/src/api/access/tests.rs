//! The access rules on their own: which settings may start where, and who gets what.

use super::*;

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn tokens() -> TokenStore {
    let mut store = TokenStore::default();
    store.add_env_list(Scope::Read, "read-secret");
    store.add_env_list(Scope::Admin, "admin-secret");
    store
}

fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    headers
}

fn code(result: Result<(), ApiError>) -> Option<&'static str> {
    result.err().map(|e| e.code())
}

#[test]
fn loopback_without_tokens_is_open_and_elsewhere_needs_an_admin_token() {
    let open = Access::for_listener(addr("127.0.0.1:8080"), AccessSettings::default()).unwrap();
    assert!(open.is_open());
    let err = Access::for_listener(addr("0.0.0.0:8080"), AccessSettings::default()).unwrap_err();
    assert!(err.to_string().contains("metrics-hub token new"), "{err}");
    let anonymous_read = AccessSettings {
        allow_anonymous_read: true,
        ..AccessSettings::default()
    };
    let public = Access::for_listener(addr("0.0.0.0:8080"), anonymous_read).unwrap();
    assert!(!public.is_open());
    assert_eq!(
        code(public.authorize(&Caller::Anonymous, Scope::Read, "/api/metrics")),
        None
    );
    assert_eq!(
        code(public.authorize(&Caller::Anonymous, Scope::Admin, "/api/cache/clear")),
        Some("missing_token")
    );
    let with_tokens = AccessSettings {
        tokens: tokens(),
        ..AccessSettings::default()
    };
    let guarded = Access::for_listener(addr("0.0.0.0:8080"), with_tokens.clone()).unwrap();
    assert!(!guarded.is_open());
    // Tokens on loopback are enforced too.
    assert!(!Access::for_listener(addr("127.0.0.1:8080"), with_tokens)
        .unwrap()
        .is_open());
}

#[test]
fn scopes_are_checked_and_admin_implies_read() {
    let access = Access::for_listener(
        addr("0.0.0.0:8080"),
        AccessSettings {
            tokens: tokens(),
            public_health: true,
            ..AccessSettings::default()
        },
    )
    .unwrap();
    let peer = IpAddr::from([10, 0, 0, 1]);
    let read = access.identify(&bearer("read-secret"), peer).unwrap();
    let admin = access.identify(&bearer("admin-secret"), peer).unwrap();
    assert_eq!(read.name(), "env-read-1");
    assert_eq!(
        code(access.authorize(&read, Scope::Read, "/api/metrics")),
        None
    );
    assert_eq!(
        code(access.authorize(&read, Scope::Admin, "/api/cache/clear")),
        Some("insufficient_scope")
    );
    assert_eq!(
        code(access.authorize(&admin, Scope::Read, "/api/metrics")),
        None
    );
    assert_eq!(
        code(access.authorize(&admin, Scope::Admin, "/api/cache/clear")),
        None
    );
    assert_eq!(
        access
            .identify(&bearer("admin-secreT"), peer)
            .unwrap_err()
            .code(),
        "invalid_token"
    );
    assert_eq!(
        code(access.authorize(&Caller::Anonymous, Scope::Read, "/api/metrics")),
        Some("missing_token")
    );
    assert_eq!(
        code(access.authorize(&Caller::Anonymous, Scope::Read, "/api/health")),
        None,
        "--public-health"
    );
}

#[test]
fn refusals_carry_the_bearer_challenge() {
    let refusal = challenge(
        StatusCode::FORBIDDEN,
        "insufficient_scope",
        "x",
        "error=\"insufficient_scope\", scope=\"admin\"",
    );
    let response = refusal.into_response();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        response.headers()[header::WWW_AUTHENTICATE],
        "Bearer realm=\"metrics-hub\", error=\"insufficient_scope\", scope=\"admin\""
    );
}
