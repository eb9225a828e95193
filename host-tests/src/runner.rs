//! [`WasmRunner`]: the compiled filter as a [`Runner`], driven the way Envoy
//! drives a proxy-wasm HTTP filter.
//!
//! VM start: `_initialize`, `proxy_on_context_create(root, 0)`,
//! `proxy_on_vm_start`. Configure: `proxy_on_configure(root, size)` with the
//! plugin configuration buffer. Each stream: `proxy_on_context_create(id,
//! root)`, `proxy_on_request_headers`, `proxy_on_response_headers`, then
//! `proxy_on_done`, `proxy_on_log`, `proxy_on_delete`.

use std::collections::BTreeMap;

use sticky_core::testing::FakeHost;
use sticky_core::testing::sim::Runner;
use wasmtime::{Linker, Module, Store, TypedFunc, WasmParams, WasmResults};

use crate::abi;
use crate::error::HostError;
use crate::module;
use crate::profile::Profile;
use crate::state::{HostState, LogLine, Phase};
use crate::{env, profile, wasi};

/// Fuel (≈ wasm instructions) one callback may burn before it counts as a
/// runaway loop. The costliest path needs well under 1% of it.
pub const FUEL_PER_CALL: u64 = 50_000_000;

/// The root context's id.
const ROOT_CONTEXT: u32 = 1;

/// What one stream cost the filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamCost {
    /// Fuel of `proxy_on_context_create` + `proxy_on_request_headers`.
    pub request: u64,
    /// Fuel of `proxy_on_response_headers`.
    pub response: u64,
    /// Fuel of `proxy_on_done` + `proxy_on_log` + `proxy_on_delete`.
    pub end: u64,
    /// Host calls the stream made, by name.
    pub calls: BTreeMap<&'static str, u64>,
}

impl StreamCost {
    /// All fuel of the stream.
    pub fn fuel(&self) -> u64 {
        self.request
            .saturating_add(self.response)
            .saturating_add(self.end)
    }

    /// Number of host calls of the stream.
    pub fn host_calls(&self) -> u64 {
        self.calls.values().fold(0, |a, b| a.saturating_add(*b))
    }
}

#[derive(Clone)]
struct Exports {
    initialize: Option<TypedFunc<(), ()>>,
    context_create: TypedFunc<(i32, i32), ()>,
    vm_start: TypedFunc<(i32, i32), i32>,
    configure: TypedFunc<(i32, i32), i32>,
    request_headers: TypedFunc<(i32, i32, i32), i32>,
    response_headers: TypedFunc<(i32, i32, i32), i32>,
    done: TypedFunc<i32, i32>,
    log: TypedFunc<i32, ()>,
    delete: TypedFunc<i32, ()>,
}

/// One VM of the compiled filter, with the fake host around it.
pub struct WasmRunner {
    store: Store<HostState>,
    exports: Exports,
    next_context: u32,
    stream: Option<u32>,
    cost: StreamCost,
    poisoned: Option<String>,
}

impl WasmRunner {
    /// A started VM of `dist/sticky.wasm` (or `$STICKY_WASM`).
    pub fn new() -> Result<Self, HostError> {
        Self::with_module(module::sticky_module()?)
    }

    /// A started VM of `module` (which must come from [`module::engine`]).
    pub fn with_module(module: &Module) -> Result<Self, HostError> {
        let engine = module.engine();
        let mut linker = Linker::new(engine);
        let load = |e: wasmtime::Error| HostError::Load(format!("{e:#}"));
        env::add_to_linker(engine, &mut linker).map_err(load)?;
        wasi::add_to_linker(&mut linker).map_err(load)?;
        profile::add_to_linker(&mut linker, |state: &mut HostState| &mut state.profile)
            .map_err(load)?;
        let mut store = Store::new(engine, HostState::new(FakeHost::default()));

        let unknown: Vec<String> = module
            .imports()
            .filter(|i| linker.get_by_import(&mut store, i).is_none())
            .map(|i| format!("{}.{}", i.module(), i.name()))
            .collect();
        if !unknown.is_empty() {
            return Err(HostError::Load(format!(
                "the module imports {}, which neither proxy-wasm ABI 0.2.1 nor the WASI \
                 subset of this host provides (Envoy refuses such a module too)",
                unknown.join(", ")
            )));
        }
        if module.get_export("proxy_abi_version_0_2_1").is_none() {
            return Err(HostError::Load(
                "no `proxy_abi_version_0_2_1` export: not a proxy-wasm 0.2.1 module".into(),
            ));
        }

        store.set_fuel(FUEL_PER_CALL).map_err(load)?;
        let instance = linker
            .instantiate(&mut store, module)
            .map_err(|e| HostError::Load(format!("instantiation failed: {e:#}")))?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or_else(|| HostError::Load("no `memory` export".into()))?;
        macro_rules! export {
            ($name:literal) => {
                instance
                    .get_typed_func(&mut store, $name)
                    .map_err(|e| HostError::Load(format!("export `{}`: {e:#}", $name)))?
            };
        }
        let alloc = export!("proxy_on_memory_allocate");
        let initialize = match instance.get_func(&mut store, "_initialize") {
            Some(_) => Some(export!("_initialize")),
            None => None,
        };
        let exports = Exports {
            initialize,
            context_create: export!("proxy_on_context_create"),
            vm_start: export!("proxy_on_vm_start"),
            configure: export!("proxy_on_configure"),
            request_headers: export!("proxy_on_request_headers"),
            response_headers: export!("proxy_on_response_headers"),
            done: export!("proxy_on_done"),
            log: export!("proxy_on_log"),
            delete: export!("proxy_on_delete"),
        };
        let state = store.data_mut();
        state.memory = Some(memory);
        state.alloc = Some(alloc);
        state.root_context = ROOT_CONTEXT;

        let mut runner = Self {
            store,
            exports,
            next_context: ROOT_CONTEXT.saturating_add(1),
            stream: None,
            cost: StreamCost::default(),
            poisoned: None,
        };
        runner.start_vm()?;
        Ok(runner)
    }

    fn start_vm(&mut self) -> Result<(), HostError> {
        let e = self.exports.clone();
        if let Some(init) = &e.initialize {
            self.call("_initialize", Phase::Initialize, init, ())?;
        }
        self.call(
            "proxy_on_context_create",
            Phase::ContextCreate,
            &e.context_create,
            (abi_u32(ROOT_CONTEXT), 0),
        )?;
        let size = len_i32(self.store.data().vm_config.len());
        let (ok, _) = self.call(
            "proxy_on_vm_start",
            Phase::VmStart,
            &e.vm_start,
            (abi_u32(ROOT_CONTEXT), size),
        )?;
        if ok != 1 {
            return Err(self.poison(HostError::Trap {
                export: "proxy_on_vm_start",
                message: format!("returned {ok}: the VM refused to start"),
            }));
        }
        Ok(())
    }

    /// Loads a plugin configuration; `Ok(false)` when the filter refuses it.
    pub fn try_configure(&mut self, json: &[u8]) -> Result<bool, HostError> {
        self.store.data_mut().plugin_config = json.to_vec();
        let e = self.exports.clone();
        let (ok, _) = self.call(
            "proxy_on_configure",
            Phase::Configure,
            &e.configure,
            (abi_u32(ROOT_CONTEXT), len_i32(json.len())),
        )?;
        match ok {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(self.poison(HostError::Abi {
                export: "proxy_on_configure",
                message: format!("returned {other}, not a bool"),
            })),
        }
    }

    /// Starts a stream on `host` and runs the request-headers phase.
    pub fn try_on_request(&mut self, host: &mut FakeHost, now: u64) -> Result<(), HostError> {
        self.with_host(host, now, |r| {
            if r.stream.is_some() {
                r.end_stream()?;
            }
            r.store.data_mut().calls.clear();
            let id = r.next_context;
            r.next_context = id.checked_add(1).unwrap_or(ROOT_CONTEXT.saturating_add(1));
            r.stream = Some(id);
            r.store.data_mut().stream_context = Some(id);
            let e = r.exports.clone();
            let ((), create) = r.call(
                "proxy_on_context_create",
                Phase::ContextCreate,
                &e.context_create,
                (abi_u32(id), abi_u32(ROOT_CONTEXT)),
            )?;
            let headers = len_i32(r.store.data().host.request.len());
            let (action, fuel) = r.call(
                "proxy_on_request_headers",
                Phase::RequestHeaders,
                &e.request_headers,
                (abi_u32(id), headers, 1),
            )?;
            r.check_action("proxy_on_request_headers", action)?;
            r.cost = StreamCost {
                request: create.saturating_add(fuel),
                ..StreamCost::default()
            };
            Ok(())
        })
    }

    /// Runs the response-headers phase on `host` and ends the stream.
    pub fn try_on_response(&mut self, host: &mut FakeHost, now: u64) -> Result<(), HostError> {
        self.with_host(host, now, |r| {
            let Some(id) = r.stream else {
                return Err(HostError::Trap {
                    export: "proxy_on_response_headers",
                    message: "the harness ran a response phase without a request phase".into(),
                });
            };
            let e = r.exports.clone();
            let headers = len_i32(r.store.data().host.response.len());
            let (action, fuel) = r.call(
                "proxy_on_response_headers",
                Phase::ResponseHeaders,
                &e.response_headers,
                (abi_u32(id), headers, 0),
            )?;
            r.check_action("proxy_on_response_headers", action)?;
            r.cost.response = fuel;
            r.end_stream()
        })
    }

    fn end_stream(&mut self) -> Result<(), HostError> {
        let Some(id) = self.stream.take() else {
            return Ok(());
        };
        let e = self.exports.clone();
        let (done, a) = self.call("proxy_on_done", Phase::StreamEnd, &e.done, abi_u32(id))?;
        if done != 1 {
            return Err(self.poison(HostError::Abi {
                export: "proxy_on_done",
                message: format!(
                    "an HTTP context returned {done}: only root contexts may delay their end"
                ),
            }));
        }
        let ((), b) = self.call("proxy_on_log", Phase::StreamEnd, &e.log, abi_u32(id))?;
        let ((), c) = self.call("proxy_on_delete", Phase::StreamEnd, &e.delete, abi_u32(id))?;
        let state = self.store.data_mut();
        state.stream_context = None;
        self.cost.end = a.saturating_add(b).saturating_add(c);
        self.cost.calls = state.calls.clone();
        Ok(())
    }

    fn check_action(&mut self, export: &'static str, action: i32) -> Result<(), HostError> {
        match action {
            abi::ACTION_CONTINUE => Ok(()),
            // Pausing after a local reply is how Envoy expects it to end.
            abi::ACTION_PAUSE if self.store.data().host.local_reply.is_some() => Ok(()),
            abi::ACTION_PAUSE => Err(self.poison(HostError::Trap {
                export,
                message: "returned Action::Pause: the stream would hang (sticky must never pause)"
                    .into(),
            })),
            other => Err(self.poison(HostError::Abi {
                export,
                message: format!("returned {other}, not an Action"),
            })),
        }
    }

    /// Calls an export in `phase`; returns its result and the fuel it used.
    fn call<P: WasmParams, R: WasmResults>(
        &mut self,
        export: &'static str,
        phase: Phase,
        func: &TypedFunc<P, R>,
        params: P,
    ) -> Result<(R, u64), HostError> {
        if let Some(reason) = &self.poisoned {
            return Err(HostError::Poisoned(reason.clone()));
        }
        let state = self.store.data_mut();
        state.phase = phase;
        state.violation = None;
        let fuel = self
            .store
            .set_fuel(FUEL_PER_CALL)
            .map_err(|e| HostError::Load(format!("{e:#}")));
        if let Err(e) = fuel {
            return Err(self.poison(e));
        }
        let result = func.call(&mut self.store, params);
        let left = self.store.get_fuel().unwrap_or(0);
        let used = FUEL_PER_CALL.saturating_sub(left);
        let state = self.store.data_mut();
        state.phase = Phase::Idle;
        match result {
            Ok(r) => Ok((r, used)),
            Err(e) => {
                let failure = match state.violation.take() {
                    Some(message) => HostError::Abi { export, message },
                    None => {
                        let critical = state
                            .logs
                            .iter()
                            .rev()
                            .find(|l| l.level == "critical")
                            .map(|l| format!("; the filter logged: {}", l.message))
                            .unwrap_or_default();
                        HostError::Trap {
                            export,
                            message: format!("{e:?}{critical}"),
                        }
                    }
                };
                Err(self.poison(failure))
            }
        }
    }

    fn poison(&mut self, failure: HostError) -> HostError {
        if self.poisoned.is_none() {
            self.poisoned = Some(failure.to_string());
        }
        failure
    }

    /// Runs `f` with `host` as the store's host state, and gives it back after.
    fn with_host<T>(
        &mut self,
        host: &mut FakeHost,
        now: u64,
        f: impl FnOnce(&mut Self) -> Result<T, HostError>,
    ) -> Result<T, HostError> {
        std::mem::swap(&mut self.store.data_mut().host, host);
        self.store.data_mut().now = now;
        let result = f(self);
        std::mem::swap(&mut self.store.data_mut().host, host);
        result
    }

    /// What the last complete stream cost.
    pub fn last_cost(&self) -> &StreamCost {
        &self.cost
    }

    /// Fuel per function of an instrumented module ([`crate::profile`]).
    pub fn profile(&mut self) -> &mut Profile {
        &mut self.store.data_mut().profile
    }

    /// Current size of the filter's linear memory in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.store
            .data()
            .memory
            .map_or(0, |m| m.data_size(&self.store))
    }

    /// Every line the filter logged, with its level.
    pub fn log_lines(&self) -> &[LogLine] {
        &self.store.data().logs
    }

    /// Names of the metrics the filter defined, in id order.
    pub fn metric_names(&self) -> Vec<&'static str> {
        self.store.data().metrics.iter().map(|m| m.name).collect()
    }
}

/// A context id or size as the `i32` the wasm32 ABI passes.
fn abi_u32(value: u32) -> i32 {
    crate::guest::signed(value)
}

/// A host-side length as a wasm32 `usize` argument.
fn len_i32(len: usize) -> i32 {
    abi_u32(u32::try_from(len).unwrap_or(u32::MAX))
}

/// Runs as the `sim` expects: a failure of the filter fails the test, with
/// the harness's message (the trait has no error channel).
#[allow(clippy::panic)]
impl Runner for WasmRunner {
    fn configure(&mut self, json: &[u8]) -> bool {
        self.try_configure(json).unwrap_or_else(|e| panic!("{e}"))
    }

    fn on_request(&mut self, host: &mut FakeHost, now: u64) {
        if let Err(e) = self.try_on_request(host, now) {
            panic!("{e}");
        }
    }

    fn on_response(&mut self, host: &mut FakeHost, now: u64) {
        if let Err(e) = self.try_on_response(host, now) {
            panic!("{e}");
        }
    }

    fn logs(&self) -> Vec<String> {
        self.log_lines()
            .iter()
            .map(|l| format!("{}: {}", l.level, l.message))
            .collect()
    }
}
