//! The world's exports as a plugin writes them: a [`DataSource`] built from the `config:`
//! entries, kept in an [`Instance`] between calls, and [`export_plugin!`] to wire both to
//! the component's exports.

use std::cell::RefCell;

use crate::{ConfigEntry, Host, Metrics, QueryParams, SourceError};

/// One initialized source: what a plugin implements instead of the generated `Guest` trait.
/// Every call gets the host, so the same code runs against [`crate::WasmHost`] in the
/// component and against a fake host in unit tests.
pub trait DataSource: Sized {
    /// Checks the `config:` entries and builds the source's state, once per instance.
    fn initialize(host: &mut dyn Host, config: &[ConfigEntry]) -> Result<Self, SourceError>;

    /// Fetches the unified metrics for one request window.
    fn fetch_metrics(
        &mut self,
        host: &mut dyn Host,
        params: &QueryParams,
    ) -> Result<Metrics, SourceError>;

    /// A cheap call proving that the service answers with the configured credentials.
    fn health_check(&mut self, host: &mut dyn Host) -> Result<(), SourceError>;

    /// Called once at shutdown, before the state is dropped; the default does nothing more.
    fn cleanup(&mut self) {}
}

/// The source's state between calls within one component instance. The hub never shares
/// an instance across sources, and instances are single-threaded, hence a `RefCell`.
pub struct Instance<S>(RefCell<Option<S>>);

impl<S: DataSource> Instance<S> {
    /// An instance not yet initialized.
    pub const fn new() -> Instance<S> {
        Instance(RefCell::new(None))
    }

    /// Builds the state from `config`, replacing any earlier one. On error the instance
    /// keeps the state it had, as the plugins did before this crate existed.
    pub fn initialize(
        &self,
        host: &mut dyn Host,
        config: &[ConfigEntry],
    ) -> Result<(), SourceError> {
        let source = S::initialize(host, config)?;
        *self.0.borrow_mut() = Some(source);
        Ok(())
    }

    /// Forwards to [`DataSource::fetch_metrics`].
    pub fn fetch_metrics(
        &self,
        host: &mut dyn Host,
        params: &QueryParams,
    ) -> Result<Metrics, SourceError> {
        self.with_source(|source| source.fetch_metrics(host, params))
    }

    /// Forwards to [`DataSource::health_check`].
    pub fn health_check(&self, host: &mut dyn Host) -> Result<(), SourceError> {
        self.with_source(|source| source.health_check(host))
    }

    /// Runs [`DataSource::cleanup`] and drops the state, secrets included.
    pub fn cleanup(&self) {
        if let Some(mut source) = self.0.borrow_mut().take() {
            source.cleanup();
        }
    }

    /// The hub initializes every instance before any other call: a call before that is a
    /// bug on one side of the contract, reported rather than trapped on.
    fn with_source<T>(
        &self,
        call: impl FnOnce(&mut S) -> Result<T, SourceError>,
    ) -> Result<T, SourceError> {
        match &mut *self.0.borrow_mut() {
            Some(source) => call(source),
            None => Err(SourceError::Internal("called before initialize".into())),
        }
    }
}

impl<S: DataSource> Default for Instance<S> {
    fn default() -> Instance<S> {
        Instance::new()
    }
}

/// Exports a [`DataSource`] as the component's `data-source` world:
/// `guest_support::export_plugin!(MyPlugin);` in the plugin's `lib.rs`.
///
/// It expands, inside the plugin crate, to a thread-local [`Instance`], an implementation
/// of the generated `Guest` trait that forwards every export to it with the real
/// [`crate::WasmHost`], and wit-bindgen's `export!`. It must be invoked in the crate that
/// becomes the component (the `cdylib`), exactly once.
#[macro_export]
macro_rules! export_plugin {
    ($source:ty) => {
        const _: () = {
            ::std::thread_local! {
                static INSTANCE: $crate::Instance<$source> = const { $crate::Instance::new() };
            }

            struct Component;

            impl $crate::bindings::Guest for Component {
                fn initialize(
                    config: ::std::vec::Vec<$crate::ConfigEntry>,
                ) -> ::std::result::Result<(), $crate::SourceError> {
                    INSTANCE.with(|instance| instance.initialize(&mut $crate::WasmHost, &config))
                }

                fn fetch_metrics(
                    params: $crate::QueryParams,
                ) -> ::std::result::Result<$crate::Metrics, $crate::SourceError> {
                    INSTANCE.with(|instance| instance.fetch_metrics(&mut $crate::WasmHost, &params))
                }

                fn health_check() -> ::std::result::Result<(), $crate::SourceError> {
                    INSTANCE.with(|instance| instance.health_check(&mut $crate::WasmHost))
                }

                fn cleanup() {
                    INSTANCE.with(|instance| instance.cleanup())
                }
            }

            // Braces, because rustfmt tries to format a parenthesized call, cannot parse
            // `with_types_in` and then mangles the indentation around it.
            $crate::bindings::export! { Component with_types_in $crate::bindings }
        };
    };
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::host::testing::{json, FakeHost};
    use crate::log::Level;

    /// Counts its calls; its cleanup is seen in `CLEANED`, as the state is gone by then.
    struct Counter {
        calls: i64,
    }

    thread_local! {
        static CLEANED: Cell<bool> = const { Cell::new(false) };
    }

    impl DataSource for Counter {
        fn initialize(host: &mut dyn Host, config: &[ConfigEntry]) -> Result<Counter, SourceError> {
            if config.iter().any(|entry| entry.key == "fail") {
                return Err(SourceError::InvalidConfig("told to fail".into()));
            }
            host.log(Level::Info, "initialized", &[]);
            Ok(Counter { calls: 0 })
        }

        fn fetch_metrics(
            &mut self,
            _host: &mut dyn Host,
            _params: &QueryParams,
        ) -> Result<Metrics, SourceError> {
            self.calls += 1;
            Ok(Metrics {
                summary: Some(crate::types::Summary {
                    total_users: None,
                    total_events: Some(self.calls),
                    page_views: None,
                    active_clients: None,
                    extra: vec![],
                }),
                daily: None,
                features: None,
                clients: None,
            })
        }

        fn health_check(&mut self, _host: &mut dyn Host) -> Result<(), SourceError> {
            Ok(())
        }

        fn cleanup(&mut self) {
            CLEANED.set(true);
        }
    }

    fn params() -> QueryParams {
        QueryParams {
            days: 0,
            start_date: "2026-01-01".into(),
            end_date: "2026-01-01".into(),
            filters: vec![],
            deadline_ms: 10_000,
        }
    }

    fn entry(key: &str) -> ConfigEntry {
        ConfigEntry {
            key: key.into(),
            value: String::new(),
        }
    }

    fn events(instance: &Instance<Counter>, host: &mut FakeHost) -> i64 {
        let metrics = instance.fetch_metrics(host, &params()).unwrap();
        metrics.summary.unwrap().total_events.unwrap()
    }

    #[test]
    fn calls_before_initialize_are_internal_errors() {
        let instance = Instance::<Counter>::new();
        let mut host = FakeHost::new(|_| json(500, ""));
        for error in [
            instance.fetch_metrics(&mut host, &params()).map(|_| ()),
            instance.health_check(&mut host),
        ] {
            assert_eq!(
                error,
                Err(SourceError::Internal("called before initialize".into()))
            );
        }
    }

    #[test]
    fn keeps_the_state_between_calls_until_cleanup() {
        let instance = Instance::<Counter>::new();
        let mut host = FakeHost::new(|_| json(500, ""));
        instance.initialize(&mut host, &[]).unwrap();
        assert_eq!(host.logs, ["Level::Info initialized []"]);
        assert_eq!(
            (events(&instance, &mut host), events(&instance, &mut host)),
            (1, 2)
        );

        // A failed re-initialization leaves the working state alone.
        let error = instance
            .initialize(&mut host, &[entry("fail")])
            .unwrap_err();
        assert!(matches!(error, SourceError::InvalidConfig(_)), "{error:?}");
        assert_eq!(events(&instance, &mut host), 3);

        instance.cleanup();
        assert!(CLEANED.get());
        assert!(instance.health_check(&mut host).is_err());
        assert!(host.requests.is_empty());
    }
}
