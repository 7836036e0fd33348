//! The web console at `/console/` (static assets embedded in the binary).

use axum::Router;

use super::AppState;

/// The console's routes (none yet).
pub(super) fn routes() -> Router<AppState> {
    Router::new()
}
