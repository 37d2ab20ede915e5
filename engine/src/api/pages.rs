//! The built-in pages: the dashboard at `/` and the admin page at `/admin/sources`, served
//! from `engine/assets/`, which is embedded in the binary, so the hub needs no CDN, no
//! front-end build step and no files beside it. The pages are static; they read the JSON
//! API like any other client.

use std::sync::Arc;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use rust_embed::Embed;
use tower_http::compression::CompressionLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, ErrorBody};
use crate::hub::Hub;

#[derive(Embed)]
#[folder = "assets/"]
struct Assets;

/// Scripts, styles and data only from the hub itself: a value from a source that somehow
/// reached the page as markup still could not run or load anything.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

pub(super) fn routes() -> OpenApiRouter<Arc<Hub>> {
    OpenApiRouter::new()
        .routes(routes!(dashboard))
        .routes(routes!(admin))
        .routes(routes!(admin_sources))
        .routes(routes!(asset))
        // Only the pages' files: the JSON API stays as it was measured.
        .layer(CompressionLayer::new())
}

/// The dashboard.
#[utoipa::path(get, path = "/", tag = "pages", responses(
    (status = 200, description = "The dashboard's page.", content_type = "text/html"),
    (status = 304, description = "Unchanged since the ETag sent in If-None-Match."),
))]
async fn dashboard(headers: HeaderMap) -> Response {
    file("index.html", &headers)
}

/// Where the admin page used to be.
#[utoipa::path(get, path = "/admin", tag = "pages", responses(
    (status = 308, description = "To /admin/sources."),
))]
async fn admin() -> Redirect {
    Redirect::permanent("/admin/sources")
}

/// The admin page: every source's state, re-checks and cache clears.
#[utoipa::path(get, path = "/admin/sources", tag = "pages", responses(
    (status = 200, description = "The admin page.", content_type = "text/html"),
    (status = 304, description = "Unchanged since the ETag sent in If-None-Match."),
))]
async fn admin_sources(headers: HeaderMap) -> Response {
    file("admin.html", &headers)
}

/// A file of the pages: scripts, styles, images, the vendored Chart.js.
#[utoipa::path(get, path = "/assets/{*path}", tag = "pages",
    params(("path" = String, Path, description = "The file's path under engine/assets/; it may hold slashes.")),
    responses(
        (status = 200, description = "The file, with its MIME type.", content_type = "*/*"),
        (status = 304, description = "Unchanged since the ETag sent in If-None-Match."),
        (status = 404, description = "`not_found`: no such file (the pages themselves are not assets).", body = ErrorBody),
    ),
)]
async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    // The pages are not assets: one URL each.
    if path.ends_with(".html") {
        return ApiError::not_found().into_response();
    }
    file(&path, &headers)
}

/// One embedded file, revalidated by its SHA-256: browsers ask again each time (the hub
/// may have been upgraded) and get a 304 while nothing changed. The tag is weak because
/// the gzipped and the plain body share it.
fn file(path: &str, headers: &HeaderMap) -> Response {
    let Some(asset) = Assets::get(path) else {
        return ApiError::not_found().into_response();
    };
    let tag = format!("\"{}\"", hex(&asset.metadata.sha256_hash()));
    // If-None-Match compares weakly (RFC 9110 13.1.2): W/"..." and "..." both match.
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .map(str::trim)
                .any(|sent| sent == "*" || sent.strip_prefix("W/").unwrap_or(sent) == tag)
        });
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        asset.data.into_owned().into_response()
    };
    let headers = response.headers_mut();
    if !unchanged {
        let mime = asset.metadata.mimetype();
        let content_type = if mime.starts_with("text/") || mime.ends_with("javascript") {
            format!("{mime}; charset=utf-8")
        } else {
            mime.to_owned()
        };
        if let Ok(value) = HeaderValue::from_str(&content_type) {
            headers.insert(header::CONTENT_TYPE, value);
        }
    }
    if let Ok(value) = HeaderValue::from_str(&format!("W/{tag}")) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use sha2::{Digest, Sha256};
    use tower::ServiceExt;

    use crate::hub::HubSettings;
    use crate::load::LoadedSources;

    async fn get(path: &str, if_none_match: Option<&str>) -> Response {
        get_with(path, if_none_match, None).await
    }

    async fn get_with(
        path: &str,
        if_none_match: Option<&str>,
        accept_encoding: Option<&str>,
    ) -> Response {
        let hub = Arc::new(Hub::new(LoadedSources::default(), HubSettings::default()));
        let mut request = Request::get(path);
        if let Some(encodings) = accept_encoding {
            request = request.header(header::ACCEPT_ENCODING, encodings);
        }
        if let Some(tag) = if_none_match {
            request = request.header(header::IF_NONE_MATCH, tag);
        }
        super::super::router(hub)
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn pages_are_served_with_a_strict_policy_and_revalidated_by_etag() {
        for (path, marker) in [
            ("/", "id=\"dashboard\""),
            ("/admin/sources", "id=\"admin\""),
        ] {
            let response = get(path, None).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            let headers = response.headers().clone();
            assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
            assert!(headers[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("script-src 'self'"));
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert!(String::from_utf8_lossy(&body).contains(marker), "{path}");

            let etag = headers[header::ETAG].to_str().unwrap();
            assert!(etag.starts_with("W/\""), "{etag}");
            let again = get(path, Some(etag)).await;
            assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
            let strong = etag.trim_start_matches("W/");
            let listed = get(path, Some(&format!("\"x\", {strong}"))).await;
            assert_eq!(listed.status(), StatusCode::NOT_MODIFIED);
            let other = get(path, Some("\"something-else\"")).await;
            assert_eq!(other.status(), StatusCode::OK);
        }
        let script = get("/assets/dashboard.js", None).await;
        assert_eq!(
            script.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
    }

    #[tokio::test]
    async fn files_are_gzipped_for_clients_that_accept_it_and_the_api_is_not() {
        let path = "/assets/vendor/chart.js/chart.umd.min.js";
        let plain = get(path, None).await;
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        let original = plain.into_body().collect().await.unwrap().to_bytes();

        let zipped = get_with(path, None, Some("gzip")).await;
        assert_eq!(zipped.headers()[header::CONTENT_ENCODING], "gzip");
        let body = zipped.into_body().collect().await.unwrap().to_bytes();
        assert!(
            body.len() * 2 < original.len(),
            "{} of {}",
            body.len(),
            original.len()
        );
        let mut unzipped = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut unzipped)
            .unwrap();
        assert_eq!(unzipped, original);

        let api = get_with("/api/sources", None, Some("gzip")).await;
        assert!(api.headers().get(header::CONTENT_ENCODING).is_none());
    }

    #[tokio::test]
    async fn unknown_assets_and_pages_under_assets_are_json_404s() {
        for path in [
            "/assets/nope.js",
            "/assets/index.html",
            "/assets/../Cargo.toml",
        ] {
            let response = get(path, None).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
            assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        }
        assert_eq!(
            get("/admin", None).await.status(),
            StatusCode::PERMANENT_REDIRECT
        );
    }

    #[test]
    fn every_page_and_the_scripts_they_load_are_embedded() {
        for page in ["index.html", "admin.html"] {
            let html = String::from_utf8(Assets::get(page).unwrap().data.into_owned()).unwrap();
            // Every local script and stylesheet a page names must exist; nothing remote.
            for reference in html
                .split(['"', '\''])
                .filter(|part| part.starts_with("/assets/"))
            {
                let asset = reference.trim_start_matches("/assets/");
                assert!(
                    Assets::get(asset).is_some(),
                    "{page} loads missing {reference}"
                );
            }
            assert!(
                !html.contains("http://") && !html.contains("https://"),
                "{page} loads something remote"
            );
        }
    }

    #[test]
    fn vendored_chart_js_matches_its_recorded_checksum() {
        let notes = String::from_utf8(
            Assets::get("vendor/chart.js/VENDORED.md")
                .unwrap()
                .data
                .into_owned(),
        )
        .unwrap();
        let script = Assets::get("vendor/chart.js/chart.umd.min.js").unwrap();
        let digest = hex(&Sha256::digest(&script.data));
        assert!(
            notes.contains(&digest),
            "chart.umd.min.js (sha256 {digest}) is not the file VENDORED.md describes"
        );
        assert!(Assets::get("vendor/chart.js/LICENSE.md").is_some());
    }
}
