//! The endpoints: stores, keys, ranges, windows and sessions as JSON, each routed to the
//! instance holding the key (or gathered from every instance), and the metadata of the group.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::local::{self, Partition};
use super::{ApiError, HttpContext, HttpPage};
use crate::runtime::metadata;
use crate::serde::SerdeFormat;
use crate::state::{prefix_bounds, StoreShape};

type Ctx = State<Arc<HttpContext>>;
type Answer = Result<Response, ApiError>;

/// Entries a range or window answer holds unless `limit` says otherwise, and at most.
const DEFAULT_LIMIT: usize = 1_000;
const MAX_LIMIT: usize = 100_000;

pub(super) fn router(ctx: Arc<HttpContext>, pages: Vec<HttpPage>) -> Router {
    let mut router = Router::new()
        .route("/v1/stores", get(stores))
        .route("/v1/stores/{store}/keys/{key}", get(key))
        .route("/v1/stores/{store}/range", get(range))
        .route("/v1/stores/{store}/windows", get(windows))
        .route("/v1/stores/{store}/windows/{key}", get(windows_of_key))
        .route("/v1/stores/{store}/sessions/{key}", get(sessions))
        .route("/v1/metadata", get(metadata_of_group))
        .route("/metrics", get(prometheus_metrics));
    for page in pages {
        let (content_type, body) = (page.content_type, page.body);
        router = router.route(
            &page.path,
            get(move || async move { ([(header::CONTENT_TYPE, content_type)], body) }),
        );
    }
    router.with_state(ctx)
}

/// The query string every endpoint understands (each uses its own part).
#[derive(Debug, Default, Deserialize)]
struct Params {
    from: Option<String>,
    to: Option<String>,
    prefix: Option<String>,
    limit: Option<usize>,
    order: Option<String>,
    #[serde(default)]
    local: bool,
}

impl Params {
    fn limit(&self) -> Result<usize, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            Some(n) => Err(ApiError::bad_request(format!(
                "limit {n} is not from 1 to {MAX_LIMIT}"
            ))),
        }
    }

    fn time(&self, which: &str, v: &Option<String>, default: i64) -> Result<i64, ApiError> {
        match v {
            None => Ok(default),
            Some(t) => t.trim().parse().map_err(|_| {
                ApiError::bad_request(format!("`{which}` must be milliseconds, got `{t}`"))
            }),
        }
    }

    /// The forwarded query string: this one with `local=true`.
    fn forwarded(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        for (k, v) in [
            ("from", &self.from),
            ("to", &self.to),
            ("prefix", &self.prefix),
            ("order", &self.order),
        ] {
            if let Some(v) = v {
                q.push((k, v.clone()));
            }
        }
        if let Some(l) = self.limit {
            q.push(("limit", l.to_string()));
        }
        q.push(("local", "true".to_string()));
        q
    }
}

fn shape(ctx: &HttpContext, store: &str) -> Result<StoreShape, ApiError> {
    ctx.topology
        .stores
        .get(store)
        .map(|d| d.factory.shape())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_store",
                format!("there is no store `{store}` (GET /v1/stores lists them)"),
            )
        })
}

fn key_bytes(shape: &StoreShape, store: &str, key: &str) -> Result<Vec<u8>, ApiError> {
    shape
        .key
        .parse_text(key)
        .map_err(|e| ApiError::bad_request(format!("key `{key}` of store `{store}`: {e}")))
}

/// `bytes` as JSON fields `name` (and `name_encoding` when base64).
fn put_json(obj: &mut Value, name: &str, format: SerdeFormat, bytes: &[u8]) {
    let (v, base64) = format.to_json_or_base64(bytes);
    obj[name] = v;
    if base64 {
        obj[format!("{name}_encoding")] = "base64".into();
    }
}

/// The bytes a JSON key stands for, to order keys from several instances as a store does.
fn sort_bytes(format: SerdeFormat, entry: &Value) -> Vec<u8> {
    let k = &entry["key"];
    let text = match k {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match format {
        SerdeFormat::Json => serde_json::to_vec(k).unwrap_or_default(),
        _ if entry.get("key_encoding").is_some() => {
            SerdeFormat::Bytes.parse_text(&text).unwrap_or_default()
        }
        _ => format.parse_text(&text).unwrap_or_default(),
    }
}

/// Runs `f` on tokio's blocking pool: store reads may wait on disk.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::unavailable(format!("query task failed: {e}")))?
}

/// Where `key` lives: its partition and the `application.server` of its active instance.
fn locate(ctx: &HttpContext, store: &str, key: &[u8]) -> Result<(i32, String), ApiError> {
    let layout = ctx
        .group
        .layout()
        .ok_or_else(|| ApiError::unavailable("the application has no assignment yet; retry"))?;
    let meta = metadata::for_key(&layout, &ctx.group.hosts(), store, key)
        .ok_or_else(|| ApiError::unavailable(format!("store `{store}` has no tasks yet")))?;
    let owner = meta
        .active_host
        .map(|(h, p)| format!("{h}:{p}"))
        .ok_or_else(|| {
            ApiError::unavailable(format!(
                "partition {} of store `{store}` has no active instance now (rebalancing); retry",
                meta.partition
            ))
        })?;
    Ok((meta.partition, owner))
}

/// Sends the request to `owner` with `local=true` and returns its answer as it is; a peer that
/// does not answer within the forwarding timeout, or cannot be reached, is an error.
async fn forward(
    ctx: &HttpContext,
    owner: &str,
    segments: &[&str],
    params: &Params,
) -> Result<(StatusCode, Value), ApiError> {
    let bad = |e: String| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "forward_failed",
            format!("forwarding to {owner}: {e}"),
        )
    };
    let mut url =
        reqwest::Url::parse(&format!("http://{owner}/")).map_err(|e| bad(e.to_string()))?;
    url.path_segments_mut()
        .map_err(|_| bad("not a base URL".into()))?
        .clear()
        .extend(segments);
    url.query_pairs_mut().extend_pairs(params.forwarded());
    let sent = ctx
        .client
        .get(url)
        .timeout(ctx.forward_timeout)
        .send()
        .await;
    let response = sent.map_err(|e| {
        if e.is_timeout() {
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "forward_timeout",
                format!(
                    "{owner} did not answer within {} ms",
                    ctx.forward_timeout.as_millis()
                ),
            )
        } else {
            bad(e.to_string())
        }
    })?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .map_err(|e| bad(format!("unreadable answer: {e}")))?;
    Ok((status, body))
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

/// A key's request: answered here when this instance runs its partition, else forwarded.
async fn keyed(
    ctx: Arc<HttpContext>,
    store: String,
    key: String,
    params: Params,
    endpoint: &'static str,
    answer: impl FnOnce(&Partition, Vec<u8>) -> Result<Value, ApiError> + Send + 'static,
) -> Answer {
    let shape = shape(&ctx, &store)?;
    let bytes = key_bytes(&shape, &store, &key)?;
    let (partition, owner) = locate(&ctx, &store, &bytes)?;
    if owner != ctx.own {
        if params.local {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_hosted",
                format!(
                    "key `{key}` of store `{store}` (partition {partition}) is held by {owner}, not this instance"
                ),
            )
            .with("owner", owner));
        }
        let (status, body) = forward(
            &ctx,
            &owner,
            &["v1", "stores", &store, endpoint, &key],
            &params,
        )
        .await?;
        return Ok(json_response(status, body));
    }
    let (c, s) = (ctx.clone(), store.clone());
    let body = blocking(move || {
        let part = local::partition(&c.shared.hosted, &s, partition)?.ok_or_else(|| {
            ApiError::unavailable(format!(
                "partition {partition} of store `{s}` is assigned here but not running yet; retry"
            ))
        })?;
        answer(&part, bytes)
    })
    .await?;
    Ok(json_response(StatusCode::OK, body))
}

async fn key(
    State(ctx): Ctx,
    Path((store, key)): Path<(String, String)>,
    Query(p): Query<Params>,
) -> Answer {
    let shape = shape(&ctx, &store)?;
    let (own, s, k) = (ctx.own.clone(), store.clone(), key.clone());
    keyed(ctx, store, key, p, "keys", move |part, bytes| {
        let value = part.get(&bytes)?.ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!(
                    "key `{k}` is not in store `{s}` (partition {})",
                    part.partition
                ),
            )
        })?;
        let mut body =
            json!({ "store": s, "key": k, "partition": part.partition, "served_by": own });
        put_json(&mut body, "key", shape.key, &bytes);
        put_json(&mut body, "value", shape.value, &value);
        Ok(body)
    })
    .await
}

/// Windows or sessions of one key as `[{"start", "end", "value", "served_by"}]`.
fn spans(entries: Vec<(i64, i64, Vec<u8>)>, format: SerdeFormat, own: &str) -> Value {
    entries
        .into_iter()
        .map(|(start, end, v)| {
            let mut e = json!({ "start": start, "end": end, "served_by": own });
            put_json(&mut e, "value", format, &v);
            e
        })
        .collect()
}

async fn windows_of_key(
    State(ctx): Ctx,
    Path((store, key)): Path<(String, String)>,
    Query(p): Query<Params>,
) -> Answer {
    let shape = shape(&ctx, &store)?;
    let (from, to, limit) = (
        p.time("from", &p.from, 0)?,
        p.time("to", &p.to, i64::MAX)?,
        p.limit()?,
    );
    let own = ctx.own.clone();
    keyed(ctx, store, key, p, "windows", move |part, bytes| {
        let (entries, _) = part.windows_of(bytes, from, to, limit)?;
        Ok(spans(entries, shape.value, &own))
    })
    .await
}

async fn sessions(
    State(ctx): Ctx,
    Path((store, key)): Path<(String, String)>,
    Query(p): Query<Params>,
) -> Answer {
    let shape = shape(&ctx, &store)?;
    let limit = p.limit()?;
    let own = ctx.own.clone();
    keyed(ctx, store, key, p, "sessions", move |part, bytes| {
        let (entries, _) = part.sessions(bytes, limit)?;
        Ok(spans(entries, shape.value, &own))
    })
    .await
}

/// A whole-store request: this instance's partitions when `local`, else every instance's,
/// merged; `run` answers for this instance's partitions with their entries and whether any
/// was cut short.
async fn gathered(
    ctx: Arc<HttpContext>,
    store: String,
    params: Params,
    segments: &[&str],
    order: impl Fn(&Value) -> (i64, Vec<u8>) + Send,
    run: impl Fn(&Partition) -> Result<(Vec<Value>, bool), ApiError> + Send + Sync + 'static,
) -> Answer {
    let limit = params.limit()?;
    let run = Arc::new(run);
    let local_answer = {
        let (c, s, run) = (ctx.clone(), store.clone(), run.clone());
        move || {
            let (c, s, run) = (c.clone(), s.clone(), run.clone());
            blocking(move || {
                let mut entries = Vec::new();
                let mut truncated = false;
                let mut served = Vec::new();
                for part in local::partitions(&c.shared.hosted, &s)? {
                    let (e, more) = run(&part)?;
                    entries.extend(e);
                    truncated |= more;
                    served.push(part.partition);
                }
                Ok(json!({
                    "store": s, "entries": entries, "partitions": served,
                    "truncated": truncated, "served_by": [c.own],
                }))
            })
        }
    };
    if params.local {
        let mut body = local_answer().await?;
        sort_and_limit(&mut body, &order, limit);
        return Ok(json_response(StatusCode::OK, body));
    }
    let layout = ctx
        .group
        .layout()
        .ok_or_else(|| ApiError::unavailable("the application has no assignment yet; retry"))?;
    let hosts: BTreeSet<String> = metadata::for_store(&layout, &ctx.group.hosts(), &store)
        .into_iter()
        .filter(|m| m.state_stores.contains(&store))
        .map(|m| format!("{}:{}", m.host, m.port))
        .collect();
    let mut answers = Vec::new();
    for host in &hosts {
        if *host == ctx.own {
            answers.push(local_answer().await?);
            continue;
        }
        match forward(&ctx, host, segments, &params).await? {
            (StatusCode::OK, body) => answers.push(body),
            (status, body) => return Ok(json_response(status, body)),
        }
    }
    let mut merged = json!({ "store": store, "entries": [], "served_by": [], "truncated": false });
    let mut covered = BTreeSet::new();
    for a in answers {
        if let Some(e) = a["entries"].as_array() {
            merged["entries"]
                .as_array_mut()
                .expect("array")
                .extend(e.iter().cloned());
        }
        if let Some(s) = a["served_by"].as_array() {
            merged["served_by"]
                .as_array_mut()
                .expect("array")
                .extend(s.iter().cloned());
        }
        covered.extend(
            a["partitions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_i64),
        );
        if a["truncated"].as_bool() == Some(true) {
            merged["truncated"] = true.into();
        }
    }
    let wanted = layout.store_partitions(&store).map_or(0, i64::from);
    let missing: Vec<i64> = (0..wanted).filter(|p| !covered.contains(p)).collect();
    if !missing.is_empty() {
        return Err(ApiError::unavailable(format!(
            "partitions {missing:?} of store `{store}` have no running instance now (rebalancing); retry"
        )));
    }
    merged["partitions"] = Value::from(covered.into_iter().collect::<Vec<_>>());
    sort_and_limit(&mut merged, &order, limit);
    Ok(json_response(StatusCode::OK, merged))
}

fn sort_and_limit(body: &mut Value, order: &impl Fn(&Value) -> (i64, Vec<u8>), limit: usize) {
    if let Some(entries) = body["entries"].as_array_mut() {
        entries.sort_by_cached_key(order);
        if entries.len() > limit {
            entries.truncate(limit);
            body["truncated"] = true.into();
        }
    }
}

async fn range(State(ctx): Ctx, Path(store): Path<String>, Query(p): Query<Params>) -> Answer {
    let shape = shape(&ctx, &store)?;
    let bound = |v: &Option<String>| -> Result<Bound<Vec<u8>>, ApiError> {
        Ok(match v {
            Some(t) => Bound::Included(key_bytes(&shape, &store, t)?),
            None => Bound::Unbounded,
        })
    };
    let (from, to) = match &p.prefix {
        Some(_) if p.from.is_some() || p.to.is_some() => {
            return Err(ApiError::bad_request(
                "give either `prefix` or `from`/`to`, not both",
            ))
        }
        Some(prefix) => prefix_bounds(&key_bytes(&shape, &store, prefix)?),
        None => (bound(&p.from)?, bound(&p.to)?),
    };
    let reverse = match p.order.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(o) => {
            return Err(ApiError::bad_request(format!(
                "order `{o}` is not asc or desc"
            )))
        }
    };
    let limit = p.limit()?;
    let format = shape.key;
    let order = move |e: &Value| {
        let b = sort_bytes(format, e);
        (
            0,
            if reverse {
                b.iter().map(|x| !x).collect()
            } else {
                b
            },
        )
    };
    let s = store.clone();
    gathered(
        ctx,
        store,
        p,
        &["v1", "stores", &s, "range"],
        order,
        move |part| {
            let (entries, more) = part.range(from.clone(), to.clone(), reverse, limit)?;
            let entries = entries
                .into_iter()
                .map(|(k, v)| {
                    let mut e = json!({});
                    put_json(&mut e, "key", shape.key, &k);
                    put_json(&mut e, "value", shape.value, &v);
                    e
                })
                .collect();
            Ok((entries, more))
        },
    )
    .await
}

async fn windows(State(ctx): Ctx, Path(store): Path<String>, Query(p): Query<Params>) -> Answer {
    let shape = shape(&ctx, &store)?;
    let (from, to, limit) = (
        p.time("from", &p.from, 0)?,
        p.time("to", &p.to, i64::MAX)?,
        p.limit()?,
    );
    let format = shape.key;
    let order = move |e: &Value| (e["start"].as_i64().unwrap_or(0), sort_bytes(format, e));
    let s = store.clone();
    let answer = gathered(
        ctx,
        store,
        p,
        &["v1", "stores", &s, "windows"],
        order,
        move |part| {
            let (entries, more) = part.windows(from, to, limit)?;
            let entries = entries
                .into_iter()
                .map(|(k, start, end, v)| {
                    let mut e = json!({ "start": start, "end": end });
                    put_json(&mut e, "key", shape.key, &k);
                    put_json(&mut e, "value", shape.value, &v);
                    e
                })
                .collect();
            Ok((entries, more))
        },
    )
    .await?;
    Ok(answer)
}

async fn stores(State(ctx): Ctx) -> Json<Value> {
    let layout = ctx.group.layout();
    let partitions = |store: &str| layout.as_ref()?.store_partitions(store);
    let list: Vec<Value> = ctx
        .topology
        .stores
        .iter()
        .map(|(name, def)| {
            let shape = def.factory.shape();
            json!({
                "name": name, "type": shape.kind, "key_format": shape.key.name(),
                "value_format": shape.value.name(), "window_size_ms": shape.window_size_ms,
                "partitions": partitions(name),
            })
        })
        .collect();
    Json(json!({ "stores": list }))
}

async fn metadata_of_group(State(ctx): Ctx) -> Json<Value> {
    let Some(layout) = ctx.group.layout() else {
        return Json(json!({ "self": ctx.own, "hosts": [] }));
    };
    let tasks = |parts: &BTreeSet<(String, i32)>| -> Vec<String> {
        parts
            .iter()
            .filter_map(|(t, p)| layout.topic_to_sub.get(t).map(|s| format!("{s}_{p}")))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    let hosts: Vec<Value> = metadata::all_clients(&layout, &ctx.group.hosts())
        .into_iter()
        .map(|m| {
            json!({
                "host": format!("{}:{}", m.host, m.port),
                "active_tasks": tasks(&m.topic_partitions),
                "standby_tasks": tasks(&m.standby_topic_partitions),
                "stores": m.state_stores,
                "standby_stores": m.standby_state_stores,
            })
        })
        .collect();
    Json(json!({ "self": ctx.own, "state": format!("{:?}", ctx.shared.state()), "hosts": hosts }))
}

/// The metrics in Prometheus' text format (OpenMetrics), named as the Prometheus JMX exporter
/// names Kafka Streams' beans.
async fn prometheus_metrics(State(ctx): Ctx) -> Answer {
    let text = blocking(move || {
        let values = crate::runtime::metrics::collect(&ctx.shared, &ctx.config, &ctx.client_id);
        Ok(crate::metrics::render_prometheus(values))
    })
    .await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
