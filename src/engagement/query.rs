//! Engagement reads: from ClickHouse when it is configured (what analysts query too), else from the
//! embedded read model. Both answer the same; a test checks it.

use crate::app::App;
use crate::projections::engagement::{self as model, DayPoint, PostEngagement, SeriesQuery};
use crate::projections::posts::PostRow;

/// A post's engagement now.
pub async fn post_engagement(app: &App, post: &PostRow) -> Result<PostEngagement, String> {
    let (id, platform, ppid) = (
        post.id.clone(),
        post.platform.clone(),
        post.platform_post_id.clone().unwrap_or_default(),
    );
    app.models
        .read(move |c| model::post_engagement(c, &id, &platform, &ppid))
        .await
        .map_err(|e| e.to_string())
}

/// Engagement per day and platform.
pub async fn series(app: &App, q: &SeriesQuery) -> Result<Vec<DayPoint>, String> {
    let q = q.clone();
    app.models
        .read(move |c| model::series(c, &q))
        .await
        .map_err(|e| e.to_string())
}
