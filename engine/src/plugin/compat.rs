//! Components built against an older version of the WIT contract, run beside current ones.
//!
//! A loaded component is checked against the current `data-source` world first and then
//! against 0.1.0 ([`Pre::new`]). A 0.1.0 instance is called through [`Bindings`], which
//! converts its values to the current types: every summary field it sends counts as
//! provided, and it never sees `deadline-ms`. Its imports (`http`, `log`, `clock`, which
//! did not change) are served by the same host functions as the current ones.

use wasmtime::component::InstancePre;
use wasmtime::Store;

use super::bindings::v0_1::{self, clock as old_clock, http as old_http, log as old_log};
use super::bindings::{clock, http, log, types, DataSource, DataSourcePre};
use super::host::HostState;

/// What a component's exports were checked against.
pub(crate) enum Pre {
    Current(DataSourcePre<HostState>),
    V0_1(v0_1::DataSourcePre<HostState>),
}

impl Pre {
    /// Types the component's exports against each supported version, newest first. The
    /// error is the current version's: that is the one an author should build against.
    pub(crate) fn new(pre: InstancePre<HostState>) -> Result<Pre, wasmtime::Error> {
        match DataSourcePre::new(pre.clone()) {
            Ok(current) => Ok(Pre::Current(current)),
            Err(err) => v0_1::DataSourcePre::new(pre)
                .map(Pre::V0_1)
                .map_err(|_| err),
        }
    }

    /// The contract version the component was built against.
    pub(crate) fn version(&self) -> &'static str {
        match self {
            Pre::Current(_) => "0.2.0",
            Pre::V0_1(_) => "0.1.0",
        }
    }

    pub(crate) async fn instantiate(
        &self,
        store: &mut Store<HostState>,
    ) -> wasmtime::Result<Bindings> {
        Ok(match self {
            Pre::Current(pre) => Bindings::Current(pre.instantiate_async(store).await?),
            Pre::V0_1(pre) => Bindings::V0_1(pre.instantiate_async(store).await?),
        })
    }
}

/// The exports of one instance, in the current types whatever its version.
pub(crate) enum Bindings {
    Current(DataSource),
    V0_1(v0_1::DataSource),
}

type Call<T> = wasmtime::Result<Result<T, types::SourceError>>;

impl Bindings {
    pub(crate) async fn call_initialize(
        &self,
        store: &mut Store<HostState>,
        config: &[types::ConfigEntry],
    ) -> Call<()> {
        match self {
            Bindings::Current(b) => b.call_initialize(store, config).await,
            Bindings::V0_1(b) => {
                let config: Vec<_> = config.iter().map(old_config).collect();
                Ok(b.call_initialize(store, &config).await?.map_err(Into::into))
            }
        }
    }

    pub(crate) async fn call_fetch_metrics(
        &self,
        store: &mut Store<HostState>,
        params: &types::QueryParams,
    ) -> Call<types::Metrics> {
        match self {
            Bindings::Current(b) => b.call_fetch_metrics(store, params).await,
            Bindings::V0_1(b) => Ok(b
                .call_fetch_metrics(store, &old_params(params))
                .await?
                .map(Into::into)
                .map_err(Into::into)),
        }
    }

    pub(crate) async fn call_health_check(&self, store: &mut Store<HostState>) -> Call<()> {
        match self {
            Bindings::Current(b) => b.call_health_check(store).await,
            Bindings::V0_1(b) => Ok(b.call_health_check(store).await?.map_err(Into::into)),
        }
    }

    pub(crate) async fn call_cleanup(&self, store: &mut Store<HostState>) -> wasmtime::Result<()> {
        match self {
            Bindings::Current(b) => b.call_cleanup(store).await,
            Bindings::V0_1(b) => b.call_cleanup(store).await,
        }
    }
}

fn old_config(entry: &types::ConfigEntry) -> v0_1::types::ConfigEntry {
    v0_1::types::ConfigEntry {
        key: entry.key.clone(),
        value: entry.value.clone(),
    }
}

fn old_params(params: &types::QueryParams) -> v0_1::types::QueryParams {
    use v0_1::types::{Filter, FilterValue};
    let filter = |filter: &types::Filter| Filter {
        name: filter.name.clone(),
        value: match &filter.value {
            types::FilterValue::Text(text) => FilterValue::Text(text.clone()),
            types::FilterValue::Integer(n) => FilterValue::Integer(*n),
            types::FilterValue::Date(date) => FilterValue::Date(date.clone()),
        },
    };
    v0_1::types::QueryParams {
        days: params.days,
        start_date: params.start_date.clone(),
        end_date: params.end_date.clone(),
        filters: params.filters.iter().map(filter).collect(),
    }
}

fn extras(extra: Vec<v0_1::types::ExtraField>) -> Vec<types::ExtraField> {
    use v0_1::types::FieldValue as Old;
    let value = |value| match value {
        Old::Integer(n) => types::FieldValue::Integer(n),
        Old::Float(x) => types::FieldValue::Float(x),
        Old::Text(text) => types::FieldValue::Text(text),
        Old::Boolean(b) => types::FieldValue::Boolean(b),
    };
    extra
        .into_iter()
        .map(|field| types::ExtraField {
            name: field.name,
            value: value(field.value),
        })
        .collect()
}

impl From<v0_1::types::Metrics> for types::Metrics {
    fn from(old: v0_1::types::Metrics) -> types::Metrics {
        let summary = |s: v0_1::types::Summary| types::Summary {
            total_users: Some(s.total_users),
            total_events: Some(s.total_events),
            page_views: Some(s.page_views),
            active_clients: Some(s.active_clients),
            extra: extras(s.extra),
        };
        let day = |d: v0_1::types::DailyMetric| types::DailyMetric {
            date: d.date,
            users: d.users,
            events: d.events,
            extra: extras(d.extra),
        };
        let feature = |f: v0_1::types::FeatureMetric| types::FeatureMetric {
            feature: f.feature,
            views: f.views,
            extra: extras(f.extra),
        };
        let client = |c: v0_1::types::ClientMetric| types::ClientMetric {
            client: c.client,
            events: c.events,
            users: c.users,
            page_views: c.page_views,
            extra: extras(c.extra),
        };
        types::Metrics {
            summary: old.summary.map(summary),
            daily: old.daily.map(|d| d.into_iter().map(day).collect()),
            features: old.features.map(|f| f.into_iter().map(feature).collect()),
            clients: old.clients.map(|c| c.into_iter().map(client).collect()),
        }
    }
}

impl From<v0_1::types::SourceError> for types::SourceError {
    fn from(old: v0_1::types::SourceError) -> types::SourceError {
        use v0_1::types::SourceError as Old;
        match old {
            Old::Auth(m) => types::SourceError::Auth(m),
            Old::RateLimited(s) => types::SourceError::RateLimited(s),
            Old::Upstream(m) => types::SourceError::Upstream(m),
            Old::InvalidConfig(m) => types::SourceError::InvalidConfig(m),
            Old::Internal(m) => types::SourceError::Internal(m),
        }
    }
}

impl v0_1::types::Host for HostState {}

impl old_http::Host for HostState {
    async fn send(
        &mut self,
        request: old_http::Request,
    ) -> Result<old_http::Response, old_http::HttpError> {
        let header = |h: old_http::Header| http::Header {
            name: h.name,
            value: h.value,
        };
        let request = http::Request {
            method: request.method,
            url: request.url,
            headers: request.headers.into_iter().map(header).collect(),
            body: request.body,
        };
        match http::Host::send(self, request).await {
            Ok(response) => Ok(old_http::Response {
                status: response.status,
                headers: (response.headers.into_iter())
                    .map(|h| old_http::Header {
                        name: h.name,
                        value: h.value,
                    })
                    .collect(),
                body: response.body,
            }),
            Err(err) => Err(match err {
                http::HttpError::Denied(why) => old_http::HttpError::Denied(why),
                http::HttpError::Timeout => old_http::HttpError::Timeout,
                http::HttpError::TooLarge(cap) => old_http::HttpError::TooLarge(cap),
                http::HttpError::TooManyRequests(n) => old_http::HttpError::TooManyRequests(n),
                http::HttpError::Transport(why) => old_http::HttpError::Transport(why),
            }),
        }
    }
}

impl old_log::Host for HostState {
    fn log(&mut self, level: old_log::Level, message: String, fields: Vec<(String, String)>) {
        let level = match level {
            old_log::Level::Trace => log::Level::Trace,
            old_log::Level::Debug => log::Level::Debug,
            old_log::Level::Info => log::Level::Info,
            old_log::Level::Warn => log::Level::Warn,
            old_log::Level::Error => log::Level::Error,
        };
        log::Host::log(self, level, message, fields);
    }
}

impl old_clock::Host for HostState {
    fn monotonic_now(&mut self) -> u64 {
        clock::Host::monotonic_now(self)
    }

    fn now(&mut self) -> u64 {
        clock::Host::now(self)
    }
}
