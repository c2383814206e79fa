//! The UI's files, embedded in the binary: tarn's own script and style sheet, and uPlot
//! (vendored from npm at a pinned version; see `assets/vendor/README.md`).

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// (name, content type, bytes)
const FILES: [(&str, &str, &[u8]); 4] = [
    (
        "tarn.js",
        "text/javascript",
        include_bytes!("../assets/tarn.js"),
    ),
    ("tarn.css", "text/css", include_bytes!("../assets/tarn.css")),
    (
        "uPlot.iife.min.js",
        "text/javascript",
        include_bytes!("../assets/vendor/uPlot.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        "text/css",
        include_bytes!("../assets/vendor/uPlot.min.css"),
    ),
];

/// Bytes of JavaScript the UI sends in all (its own script and uPlot).
pub fn javascript_bytes() -> usize {
    FILES
        .iter()
        .filter(|(_, t, _)| *t == "text/javascript")
        .map(|(_, _, b)| b.len())
        .sum()
}

pub(crate) async fn serve(Path(file): Path<String>) -> Response {
    match FILES.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            *bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}
