//! The JSON that `render envoy` produces, converted into typed Envoy
//! protobufs for xDS. `render envoy` stays the one source of truth for the
//! listener, filters, routes and clusters; this module knows exactly the
//! fields it emits and refuses any other (a renderer change that this
//! conversion would silently drop fails here, naming the field).
//!
//! envoy-types exports no file descriptor set, so a generic JSON → Any
//! transcoder (prost-reflect) has nothing to read; hence the field list.

use std::cell::RefCell;

use envoy_types::pb::envoy::config::cluster::v3 as cluster;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::listener::v3 as listener;
use envoy_types::pb::envoy::config::route::v3 as route;
use envoy_types::pb::envoy::extensions::dynamic_modules::v3::DynamicModuleConfig;
use envoy_types::pb::envoy::extensions::filters::http::dynamic_modules::v3::DynamicModuleFilter;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::http::stateful_session::v3::StatefulSession;
use envoy_types::pb::envoy::extensions::filters::http::wasm::v3::Wasm;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::envoy::extensions::http::stateful_session::cookie::v3::CookieBasedSessionState;
use envoy_types::pb::envoy::extensions::http::stateful_session::header::v3::HeaderBasedSessionState;
use envoy_types::pb::envoy::extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate;
use envoy_types::pb::envoy::extensions::wasm::v3 as wasm;
use envoy_types::pb::envoy::r#type::http::v3::Cookie;
use envoy_types::pb::envoy::r#type::matcher::v3 as matcher;
use envoy_types::pb::google::protobuf::{Any, Duration, StringValue, UInt32Value};
use envoy_types::util::pack_any;
use prost::Name as _;
use serde_json::{Map, Value};

/// A conversion error: the JSON path and what is wrong there.
pub type Result<T> = std::result::Result<T, String>;

/// One JSON object being converted: every key must be read, or `done` fails.
struct Obj<'a> {
    map: &'a Map<String, Value>,
    at: String,
    used: RefCell<Vec<String>>,
}

impl<'a> Obj<'a> {
    fn new(v: &'a Value, at: &str) -> Result<Self> {
        let map = v
            .as_object()
            .ok_or_else(|| format!("{at}: expected an object"))?;
        Ok(Self {
            map,
            at: at.to_owned(),
            used: RefCell::new(Vec::new()),
        })
    }

    fn path(&self, key: &str) -> String {
        format!("{}.{key}", self.at)
    }

    fn opt(&self, key: &str) -> Option<&'a Value> {
        self.used.borrow_mut().push(key.to_owned());
        self.map.get(key)
    }

    fn req(&self, key: &str) -> Result<&'a Value> {
        self.opt(key)
            .ok_or_else(|| format!("{}: missing", self.path(key)))
    }

    fn str(&self, key: &str) -> Result<String> {
        self.req(key)?
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("{}: expected a string", self.path(key)))
    }

    fn opt_str(&self, key: &str) -> Result<Option<String>> {
        match self.opt(key) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(|s| Some(s.to_owned()))
                .ok_or_else(|| format!("{}: expected a string", self.path(key))),
        }
    }

    fn u32(&self, key: &str) -> Result<u32> {
        self.req(key)?
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| format!("{}: expected a u32", self.path(key)))
    }

    fn bool(&self, key: &str) -> Result<bool> {
        self.req(key)?
            .as_bool()
            .ok_or_else(|| format!("{}: expected a bool", self.path(key)))
    }

    fn obj(&self, key: &str) -> Result<Obj<'a>> {
        Obj::new(self.req(key)?, &self.path(key))
    }

    fn opt_obj(&self, key: &str) -> Result<Option<Obj<'a>>> {
        self.opt(key)
            .map(|v| Obj::new(v, &self.path(key)))
            .transpose()
    }

    fn list(&self, key: &str) -> Result<Vec<Obj<'a>>> {
        match self.opt(key) {
            None => Ok(Vec::new()),
            Some(v) => v
                .as_array()
                .ok_or_else(|| format!("{}: expected an array", self.path(key)))?
                .iter()
                .enumerate()
                .map(|(i, x)| Obj::new(x, &format!("{}[{i}]", self.path(key))))
                .collect(),
        }
    }

    fn strings(&self, key: &str) -> Result<Vec<String>> {
        match self.opt(key) {
            None => Ok(Vec::new()),
            Some(v) => v
                .as_array()
                .ok_or_else(|| format!("{}: expected an array", self.path(key)))?
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| format!("{}: expected strings", self.path(key)))
                })
                .collect(),
        }
    }

    /// Fails on any key nobody read: a field this conversion would drop.
    fn done(&self) -> Result<()> {
        let used = self.used.borrow();
        match self.map.keys().find(|k| !used.contains(k)) {
            Some(k) => Err(format!("{}: field not converted to xDS", self.path(k))),
            None => Ok(()),
        }
    }
}

/// `"15s"`, `"0.25s"` → Duration.
pub fn duration(text: &str, at: &str) -> Result<Duration> {
    let bad = || format!("{at}: {text:?} is not a duration in seconds");
    let body = text.strip_suffix('s').ok_or_else(bad)?;
    let (secs, frac) = body.split_once('.').unwrap_or((body, ""));
    let seconds: i64 = secs.parse().map_err(|_| bad())?;
    let mut nanos: i32 = 0;
    if !frac.is_empty() {
        if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let padded = format!("{frac:0<9}");
        nanos = padded.parse().map_err(|_| bad())?;
    }
    Ok(Duration { seconds, nanos })
}

/// An ADS config source (`{ads: {}, resource_api_version: V3}`).
pub fn ads_source() -> core::ConfigSource {
    core::ConfigSource {
        resource_api_version: core::ApiVersion::V3.into(),
        config_source_specifier: Some(core::config_source::ConfigSourceSpecifier::Ads(
            core::AggregatedConfigSource::default(),
        )),
        ..Default::default()
    }
}

/// A socket address.
pub fn socket(address: &str, port: u32) -> core::Address {
    core::Address {
        address: Some(core::address::Address::SocketAddress(core::SocketAddress {
            address: address.to_owned(),
            port_specifier: Some(core::socket_address::PortSpecifier::PortValue(port)),
            ..Default::default()
        })),
    }
}

fn address(v: &Obj<'_>) -> Result<core::Address> {
    let sa = v.obj("socket_address")?;
    let out = socket(&sa.str("address")?, sa.u32("port_value")?);
    sa.done()?;
    Ok(out)
}

/// The rendered listener as an LDS Listener whose HCM reads its routes by
/// RDS under `rds_name`, and the route table it held, as RouteConfiguration.
pub fn listener(
    v: &Value,
    rds_name: &str,
) -> Result<(listener::Listener, route::RouteConfiguration)> {
    let l = Obj::new(v, "listener")?;
    let name = l.str("name")?;
    let addr = address(&l.obj("address")?)?;
    let chains = l.list("filter_chains")?;
    let [chain] = <[Obj<'_>; 1]>::try_from(chains)
        .map_err(|_| "listener.filter_chains: expected exactly one".to_owned())?;
    let filters = chain.list("filters")?;
    chain.done()?;
    let [filter] = <[Obj<'_>; 1]>::try_from(filters)
        .map_err(|_| "listener.filter_chains[0].filters: expected exactly one".to_owned())?;
    let filter_name = filter.str("name")?;
    let (manager, routes) = http_connection_manager(&filter.obj("typed_config")?, rds_name)?;
    filter.done()?;
    l.done()?;
    let listener = listener::Listener {
        name,
        address: Some(addr),
        filter_chains: vec![listener::FilterChain {
            filters: vec![listener::Filter {
                name: filter_name,
                config_type: Some(listener::filter::ConfigType::TypedConfig(pack_any(manager))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    Ok((listener, routes))
}

fn http_connection_manager(
    t: &Obj<'_>,
    rds_name: &str,
) -> Result<(hcm::HttpConnectionManager, route::RouteConfiguration)> {
    expect_type::<hcm::HttpConnectionManager>(t)?;
    let codec = match t.opt_str("codec_type")?.as_deref() {
        None | Some("AUTO") => hcm::http_connection_manager::CodecType::Auto,
        Some("HTTP1") => hcm::http_connection_manager::CodecType::Http1,
        Some("HTTP2") => hcm::http_connection_manager::CodecType::Http2,
        Some(o) => return Err(format!("{}: unknown codec {o:?}", t.path("codec_type"))),
    };
    let mut routes = route_configuration(t.req("route_config")?, &t.path("route_config"))?;
    routes.name = rds_name.to_owned();
    let http_filters = t
        .list("http_filters")?
        .iter()
        .map(http_filter)
        .collect::<Result<Vec<_>>>()?;
    let early_header_mutation_extensions = t
        .list("early_header_mutation_extensions")?
        .iter()
        .map(early_header_mutation)
        .collect::<Result<Vec<_>>>()?;
    let manager = hcm::HttpConnectionManager {
        stat_prefix: t.str("stat_prefix")?,
        codec_type: codec.into(),
        http_filters,
        early_header_mutation_extensions,
        route_specifier: Some(hcm::http_connection_manager::RouteSpecifier::Rds(
            hcm::Rds {
                config_source: Some(ads_source()),
                route_config_name: rds_name.to_owned(),
            },
        )),
        ..Default::default()
    };
    t.done()?;
    Ok((manager, routes))
}

/// `envoy.http.early_header_mutation.header_mutation` with `remove` mutations.
fn early_header_mutation(e: &Obj<'_>) -> Result<core::TypedExtensionConfig> {
    use envoy_types::pb::envoy::config::common::mutation_rules::v3 as rules;
    use envoy_types::pb::envoy::extensions::http::early_header_mutation::header_mutation::v3::HeaderMutation;
    let t = e.obj("typed_config")?;
    expect_type::<HeaderMutation>(&t)?;
    let mutations = t
        .list("mutations")?
        .iter()
        .map(|m| {
            let out = rules::HeaderMutation {
                action: Some(rules::header_mutation::Action::Remove(m.str("remove")?)),
            };
            m.done().map(|()| out)
        })
        .collect::<Result<Vec<_>>>()?;
    t.done()?;
    let out = core::TypedExtensionConfig {
        name: e.str("name")?,
        typed_config: Some(pack_any(HeaderMutation { mutations })),
    };
    e.done()?;
    Ok(out)
}

fn expect_type<M: prost::Name>(t: &Obj<'_>) -> Result<()> {
    let ty = t.str("@type")?;
    if ty != M::type_url() {
        return Err(format!(
            "{}: expected {}, got {ty}",
            t.path("@type"),
            M::type_url()
        ));
    }
    Ok(())
}

fn string_value(t: &Obj<'_>) -> Result<Any> {
    expect_type::<StringValue>(t)?;
    let value = t.str("value")?;
    Ok(pack_any(StringValue { value }))
}

fn http_filter(f: &Obj<'_>) -> Result<hcm::HttpFilter> {
    let name = f.str("name")?;
    let t = f.obj("typed_config")?;
    let ty = t.str("@type")?;
    let any = if ty == Wasm::type_url() {
        pack_any(wasm_filter(&t)?)
    } else if ty == DynamicModuleFilter::type_url() {
        let m = t.obj("dynamic_module_config")?;
        let module = DynamicModuleConfig {
            name: m.str("name")?,
            ..Default::default()
        };
        m.done()?;
        pack_any(DynamicModuleFilter {
            dynamic_module_config: Some(module),
            filter_name: t.str("filter_name")?,
            filter_config: Some(string_value(&t.obj("filter_config")?)?),
            ..Default::default()
        })
    } else if ty == StatefulSession::type_url() {
        pack_any(stateful_session(&t)?)
    } else if ty == Router::type_url() {
        pack_any(Router::default())
    } else {
        return Err(format!(
            "{}: filter type {ty} not converted to xDS",
            t.path("@type")
        ));
    };
    t.done()?;
    f.done()?;
    Ok(hcm::HttpFilter {
        name,
        config_type: Some(hcm::http_filter::ConfigType::TypedConfig(any)),
        ..Default::default()
    })
}

fn wasm_filter(t: &Obj<'_>) -> Result<Wasm> {
    let c = t.obj("config")?;
    let vm = c.obj("vm_config")?;
    let code = vm.obj("code")?;
    let local = code.obj("local")?;
    let data = core::DataSource {
        specifier: Some(core::data_source::Specifier::Filename(
            local.str("filename")?,
        )),
        ..Default::default()
    };
    local.done()?;
    code.done()?;
    let vm_config = wasm::VmConfig {
        vm_id: vm.str("vm_id")?,
        runtime: vm.str("runtime")?,
        code: Some(core::AsyncDataSource {
            specifier: Some(core::async_data_source::Specifier::Local(data)),
        }),
        ..Default::default()
    };
    vm.done()?;
    #[allow(deprecated)] // `fail_open` is what render emits; Envoy 1.40 still reads it.
    let plugin = wasm::PluginConfig {
        name: c.str("name")?,
        root_id: c.str("root_id")?,
        configuration: Some(string_value(&c.obj("configuration")?)?),
        fail_open: c.bool("fail_open")?,
        vm: Some(wasm::plugin_config::Vm::VmConfig(vm_config)),
        ..Default::default()
    };
    c.done()?;
    Ok(Wasm {
        config: Some(plugin),
    })
}

fn stateful_session(t: &Obj<'_>) -> Result<StatefulSession> {
    let s = t.obj("session_state")?;
    let name = s.str("name")?;
    let st = s.obj("typed_config")?;
    let ty = st.str("@type")?;
    let any = if ty == HeaderBasedSessionState::type_url() {
        pack_any(HeaderBasedSessionState {
            name: st.str("name")?,
        })
    } else if ty == CookieBasedSessionState::type_url() {
        let c = st.obj("cookie")?;
        let cookie = Cookie {
            name: c.str("name")?,
            ttl: c
                .opt_str("ttl")?
                .map(|d| duration(&d, &c.path("ttl")))
                .transpose()?,
            path: c.opt_str("path")?.unwrap_or_default(),
            ..Default::default()
        };
        c.done()?;
        pack_any(CookieBasedSessionState {
            cookie: Some(cookie),
        })
    } else {
        return Err(format!(
            "{}: session state {ty} not converted",
            st.path("@type")
        ));
    };
    st.done()?;
    s.done()?;
    Ok(StatefulSession {
        session_state: Some(core::TypedExtensionConfig {
            name,
            typed_config: Some(any),
        }),
        strict: t.opt("strict").and_then(Value::as_bool).unwrap_or(false),
        ..Default::default()
    })
}

/// A rendered `route_config` as a RouteConfiguration.
pub fn route_configuration(v: &Value, at: &str) -> Result<route::RouteConfiguration> {
    let r = Obj::new(v, at)?;
    let virtual_hosts = r
        .list("virtual_hosts")?
        .iter()
        .map(|vh| {
            let out = route::VirtualHost {
                name: vh.str("name")?,
                domains: vh.strings("domains")?,
                routes: vh
                    .list("routes")?
                    .iter()
                    .map(route_entry)
                    .collect::<Result<_>>()?,
                ..Default::default()
            };
            Ok(out).and_then(|o| vh.done().map(|()| o))
        })
        .collect::<Result<Vec<_>>>()?;
    let out = route::RouteConfiguration {
        name: r.str("name")?,
        virtual_hosts,
        request_headers_to_remove: r.strings("request_headers_to_remove")?,
        ..Default::default()
    };
    r.done()?;
    Ok(out)
}

fn route_entry(r: &Obj<'_>) -> Result<route::Route> {
    let out = route::Route {
        name: r.opt_str("name")?.unwrap_or_default(),
        r#match: Some(route_match(&r.obj("match")?)?),
        action: Some(route::route::Action::Route(route_action(&r.obj("route")?)?)),
        ..Default::default()
    };
    r.done()?;
    Ok(out)
}

fn string_matcher(m: &Obj<'_>) -> Result<matcher::StringMatcher> {
    let pattern = if let Some(e) = m.opt_str("exact")? {
        matcher::string_matcher::MatchPattern::Exact(e)
    } else if let Some(re) = m.opt_obj("safe_regex")? {
        let p = matcher::string_matcher::MatchPattern::SafeRegex(regex(&re)?);
        re.done()?;
        p
    } else {
        return Err(format!("{}: expected exact or safe_regex", m.at));
    };
    m.done()?;
    Ok(matcher::StringMatcher {
        match_pattern: Some(pattern),
        ..Default::default()
    })
}

fn regex(re: &Obj<'_>) -> Result<matcher::RegexMatcher> {
    Ok(matcher::RegexMatcher {
        regex: re.str("regex")?,
        ..Default::default()
    })
}

fn route_match(m: &Obj<'_>) -> Result<route::RouteMatch> {
    use route::route_match::PathSpecifier;
    let path = if let Some(p) = m.opt_str("prefix")? {
        PathSpecifier::Prefix(p)
    } else if let Some(p) = m.opt_str("path")? {
        PathSpecifier::Path(p)
    } else if let Some(re) = m.opt_obj("safe_regex")? {
        let p = PathSpecifier::SafeRegex(regex(&re)?);
        re.done()?;
        p
    } else {
        return Err(format!("{}: expected prefix, path or safe_regex", m.at));
    };
    let headers = m
        .list("headers")?
        .iter()
        .map(|h| {
            let out = route::HeaderMatcher {
                name: h.str("name")?,
                header_match_specifier: Some(
                    route::header_matcher::HeaderMatchSpecifier::StringMatch(string_matcher(
                        &h.obj("string_match")?,
                    )?),
                ),
                ..Default::default()
            };
            h.done().map(|()| out)
        })
        .collect::<Result<Vec<_>>>()?;
    let query_parameters = m
        .list("query_parameters")?
        .iter()
        .map(|q| {
            let out = route::QueryParameterMatcher {
                name: q.str("name")?,
                query_parameter_match_specifier: Some(
                    route::query_parameter_matcher::QueryParameterMatchSpecifier::StringMatch(
                        string_matcher(&q.obj("string_match")?)?,
                    ),
                ),
            };
            q.done().map(|()| out)
        })
        .collect::<Result<Vec<_>>>()?;
    m.done()?;
    Ok(route::RouteMatch {
        path_specifier: Some(path),
        headers,
        query_parameters,
        ..Default::default()
    })
}

fn route_action(a: &Obj<'_>) -> Result<route::RouteAction> {
    use route::route_action::ClusterSpecifier;
    let spec = if let Some(c) = a.opt_str("cluster")? {
        ClusterSpecifier::Cluster(c)
    } else {
        let w = a.obj("weighted_clusters")?;
        let clusters = w
            .list("clusters")?
            .iter()
            .map(|c| {
                let out = route::weighted_cluster::ClusterWeight {
                    name: c.str("name")?,
                    weight: Some(UInt32Value {
                        value: c.u32("weight")?,
                    }),
                    ..Default::default()
                };
                c.done().map(|()| out)
            })
            .collect::<Result<Vec<_>>>()?;
        let out = route::WeightedCluster {
            clusters,
            runtime_key_prefix: w.opt_str("runtime_key_prefix")?.unwrap_or_default(),
            ..Default::default()
        };
        w.done()?;
        ClusterSpecifier::WeightedClusters(out)
    };
    let timeout = a
        .opt_str("timeout")?
        .map(|t| duration(&t, &a.path("timeout")))
        .transpose()?;
    let retry_policy = a
        .opt_obj("retry_policy")?
        .map(|r| retry_policy(&r))
        .transpose()?;
    let hash_policy = a
        .list("hash_policy")?
        .iter()
        .map(hash_policy)
        .collect::<Result<Vec<_>>>()?;
    a.done()?;
    Ok(route::RouteAction {
        cluster_specifier: Some(spec),
        timeout,
        retry_policy,
        hash_policy,
        ..Default::default()
    })
}

fn retry_policy(r: &Obj<'_>) -> Result<route::RetryPolicy> {
    let predicates = r
        .list("retry_host_predicate")?
        .iter()
        .map(|p| {
            let t = p.obj("typed_config")?;
            expect_type::<PreviousHostsPredicate>(&t)?;
            t.done()?;
            let out = route::retry_policy::RetryHostPredicate {
                name: p.str("name")?,
                config_type: Some(
                    route::retry_policy::retry_host_predicate::ConfigType::TypedConfig(pack_any(
                        PreviousHostsPredicate::default(),
                    )),
                ),
            };
            p.done().map(|()| out)
        })
        .collect::<Result<Vec<_>>>()?;
    let out = route::RetryPolicy {
        retry_on: r.str("retry_on")?,
        num_retries: Some(UInt32Value {
            value: r.u32("num_retries")?,
        }),
        retry_host_predicate: predicates,
        host_selection_retry_max_attempts: i64::from(r.u32("host_selection_retry_max_attempts")?),
        ..Default::default()
    };
    r.done()?;
    Ok(out)
}

fn hash_policy(h: &Obj<'_>) -> Result<route::route_action::HashPolicy> {
    use route::route_action::hash_policy;
    let c = h.obj("cookie")?;
    let cookie = hash_policy::Cookie {
        name: c.str("name")?,
        ttl: c
            .opt_str("ttl")?
            .map(|d| duration(&d, &c.path("ttl")))
            .transpose()?,
        path: c.opt_str("path")?.unwrap_or_default(),
        ..Default::default()
    };
    c.done()?;
    h.done()?;
    Ok(route::route_action::HashPolicy {
        policy_specifier: Some(hash_policy::PolicySpecifier::Cookie(cookie)),
        ..Default::default()
    })
}

/// `common_lb_config.override_host_status` with `statuses`.
pub fn override_host_status(statuses: &[core::HealthStatus]) -> cluster::cluster::CommonLbConfig {
    cluster::cluster::CommonLbConfig {
        override_host_status: Some(core::HealthStatusSet {
            statuses: statuses.iter().map(|s| i32::from(*s)).collect(),
        }),
        ..Default::default()
    }
}

fn health_status(name: &str, at: &str) -> Result<core::HealthStatus> {
    core::HealthStatus::from_str_name(name)
        .ok_or_else(|| format!("{at}: unknown health status {name:?}"))
}

/// A rendered EDS cluster as a CDS Cluster whose endpoints come by ADS.
pub fn eds_cluster(v: &Value, at: &str) -> Result<cluster::Cluster> {
    use cluster::cluster::{ClusterDiscoveryType, DiscoveryType, LbPolicy};
    let c = Obj::new(v, at)?;
    let name = c.str("name")?;
    let kind = c.str("type")?;
    if kind != "EDS" {
        return Err(format!(
            "{}: only EDS clusters are served, not {kind}",
            c.path("type")
        ));
    }
    let lb = c.str("lb_policy")?;
    let lb_policy = LbPolicy::from_str_name(&lb)
        .ok_or_else(|| format!("{}: unknown lb_policy {lb:?}", c.path("lb_policy")))?;
    let eds = c.obj("eds_cluster_config")?;
    let service_name = eds.str("service_name")?;
    // The file source it names is replaced by ADS: that is the point.
    let _ = eds.req("eds_config")?;
    eds.done()?;
    let common = c.obj("common_lb_config")?;
    let ohs = common.obj("override_host_status")?;
    let statuses = ohs
        .strings("statuses")?
        .iter()
        .map(|s| health_status(s, &ohs.path("statuses")))
        .collect::<Result<Vec<_>>>()?;
    ohs.done()?;
    common.done()?;
    let thresholds = match c.opt_obj("circuit_breakers")? {
        None => Vec::new(),
        Some(cb) => {
            let out = cb
                .list("thresholds")?
                .iter()
                .map(|t| {
                    let p = t.str("priority")?;
                    let out = cluster::circuit_breakers::Thresholds {
                        priority: core::RoutingPriority::from_str_name(&p)
                            .ok_or_else(|| {
                                format!("{}: unknown priority {p:?}", t.path("priority"))
                            })?
                            .into(),
                        max_retries: Some(UInt32Value {
                            value: t.u32("max_retries")?,
                        }),
                        ..Default::default()
                    };
                    t.done().map(|()| out)
                })
                .collect::<Result<Vec<_>>>()?;
            cb.done()?;
            out
        }
    };
    let typed_extension_protocol_options = match c.opt_obj("typed_extension_protocol_options")? {
        None => std::collections::HashMap::new(),
        Some(t) => protocol_options(&t)?,
    };
    let out = cluster::Cluster {
        name,
        typed_extension_protocol_options,
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds.into())),
        connect_timeout: Some(duration(
            &c.str("connect_timeout")?,
            &c.path("connect_timeout"),
        )?),
        lb_policy: lb_policy.into(),
        eds_cluster_config: Some(cluster::cluster::EdsClusterConfig {
            eds_config: Some(ads_source()),
            service_name,
        }),
        common_lb_config: Some(override_host_status(&statuses)),
        circuit_breakers: (!thresholds.is_empty()).then_some(cluster::CircuitBreakers {
            thresholds,
            ..Default::default()
        }),
        ..Default::default()
    };
    c.done()?;
    Ok(out)
}

/// `typed_extension_protocol_options` as `render envoy --upstream-protocol
/// http2` writes it: HttpProtocolOptions with an explicit HTTP/2 config.
fn protocol_options(t: &Obj<'_>) -> Result<std::collections::HashMap<String, Any>> {
    use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
    use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::{
        ExplicitHttpConfig, UpstreamProtocolOptions, explicit_http_config::ProtocolConfig,
    };
    const KEY: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
    let h = t.obj(KEY)?;
    expect_type::<HttpProtocolOptions>(&h)?;
    let explicit = h.obj("explicit_http_config")?;
    let h2 = explicit.obj("http2_protocol_options")?;
    h2.done()?;
    explicit.done()?;
    h.done()?;
    t.done()?;
    let options = HttpProtocolOptions {
        upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
            ExplicitHttpConfig {
                protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(
                    core::Http2ProtocolOptions::default(),
                )),
            },
        )),
        ..Default::default()
    };
    Ok(std::collections::HashMap::from([(
        KEY.to_owned(),
        pack_any(options),
    )]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_parse_exactly() {
        assert_eq!(
            duration("15s", "t").unwrap(),
            Duration {
                seconds: 15,
                nanos: 0
            }
        );
        assert_eq!(
            duration("0.25s", "t").unwrap(),
            Duration {
                seconds: 0,
                nanos: 250_000_000
            }
        );
        assert!(duration("15", "t").is_err());
        assert!(duration("1.0000000001s", "t").is_err());
    }

    #[test]
    fn an_unknown_field_is_refused_by_path() {
        let e = eds_cluster(
            &json!({"name": "v1", "type": "EDS", "lb_policy": "ROUND_ROBIN", "connect_timeout": "1s",
                    "eds_cluster_config": {"service_name": "v1", "eds_config": {}},
                    "common_lb_config": {"override_host_status": {"statuses": ["HEALTHY"]}},
                    "outlier_detection": {}}),
            "clusters[0]",
        )
        .unwrap_err();
        assert_eq!(
            e,
            "clusters[0].outlier_detection: field not converted to xDS"
        );
    }
}
