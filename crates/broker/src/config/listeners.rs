//! Listeners: `listeners`, `advertised.listeners`, `listener.security.protocol.map`,
//! `controller.listener.names` and `inter.broker.listener.name`, parsed and checked as
//! Kafka's `KafkaConfig` and `SocketServerConfigs` check them, with Kafka's messages;
//! and the tutorial's `port`, `host.name`, `advertised.host.name`, `advertised.port`.
//!
//! Contract: every broker listener `Listeners::from_properties` returns is PLAINTEXT,
//! has a distinct name, and its host resolves; every advertised listener names one of
//! them and none uses 0.0.0.0. Controller listeners (`controller.listener.names`) are
//! parsed and checked but not bound: Fjord's metadata quorum does not use Kafka's
//! controller protocol, so nothing would answer on them.

use super::{invalid, parse_num, split_list, ConfigError};
use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};

/// Kafka's `SecurityProtocol`. Only PLAINTEXT is served: a listener of another
/// protocol is refused at start-up rather than served in plaintext to clients that
/// would speak TLS or SASL to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    const ALL: [SecurityProtocol; 4] = [Self::Plaintext, Self::Ssl, Self::SaslPlaintext, Self::SaslSsl];

    pub fn name(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        }
    }

    /// As Kafka's `SecurityProtocol.forName`: case-insensitive.
    fn parse(s: &str) -> Option<SecurityProtocol> {
        Self::ALL.into_iter().find(|p| p.name().eq_ignore_ascii_case(s.trim()))
    }
}

/// One endpoint: `NAME://HOST:PORT`. `name` is normalised to upper case, as Kafka's
/// `ListenerName.normalised`; an empty `host` means every interface.
#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub security_protocol: SecurityProtocol,
}

impl Listener {
    /// The address to bind: the host resolved (an IPv4 address first, as Java's
    /// `InetAddress.getByName` prefers), or every interface for an empty host.
    pub fn socket_addr(&self) -> Result<SocketAddr, ConfigError> {
        if self.host.is_empty() {
            return Ok(SocketAddr::from(([0, 0, 0, 0], self.port)));
        }
        let resolved: Vec<SocketAddr> = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| {
                invalid(
                    "listeners",
                    &self.to_string(),
                    &format!("cannot resolve '{}': {e}", self.host),
                )
            })?
            .collect();
        resolved
            .iter()
            .find(|a| a.is_ipv4())
            .or(resolved.first())
            .copied()
            .ok_or_else(|| {
                invalid(
                    "listeners",
                    &self.to_string(),
                    &format!("'{}' has no address", self.host),
                )
            })
    }
}

impl std::fmt::Display for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.name, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.name, self.host, self.port)
        }
    }
}

/// The broker's endpoints, checked.
#[derive(Debug, Clone)]
pub struct Listeners {
    /// Every listener of `listeners`, controller listeners included, in order.
    pub all: Vec<Listener>,
    /// What clients are told, per broker listener name (`advertised.listeners`, or the
    /// listeners themselves), controller listeners left out as Kafka leaves them out.
    pub advertised: Vec<Listener>,
    pub controller_listener_names: Vec<String>,
    pub inter_broker_listener_name: String,
}

impl Listeners {
    /// The listeners this broker binds and serves clients on: all but the controller's.
    pub fn broker(&self) -> impl Iterator<Item = &Listener> {
        self.all
            .iter()
            .filter(|l| !self.controller_listener_names.contains(&l.name))
    }

    /// What a client connected through `listener` is told to connect to, if that
    /// listener is advertised.
    pub fn advertised_for(&self, listener: &str) -> Option<&Listener> {
        self.advertised.iter().find(|l| l.name == listener)
    }

    pub fn from_properties(props: &BTreeMap<String, String>) -> Result<Listeners, ConfigError> {
        let controller_listener_names: Vec<String> = props
            .get("controller.listener.names")
            .map(|v| split_list(v).iter().map(|n| n.to_ascii_uppercase()).collect())
            .unwrap_or_default();
        let protocols = security_protocol_map(props, &controller_listener_names)?;
        let all = match props.get("listeners") {
            Some(v) => parse_listeners("listeners", v, &protocols, true)?,
            None => vec![tutorial_listener(props)?],
        };
        let advertised = advertised(props, &all, &protocols, &controller_listener_names)?;
        let inter_broker_listener_name = props
            .get("inter.broker.listener.name")
            .map(|n| n.trim().to_ascii_uppercase())
            .unwrap_or_else(|| SecurityProtocol::Plaintext.name().to_string());
        let listeners = Listeners {
            all,
            advertised,
            controller_listener_names,
            inter_broker_listener_name,
        };
        listeners.validate(props)?;
        Ok(listeners)
    }

    /// Fjord's own check first (only PLAINTEXT is served), then Kafka's
    /// `KafkaConfig.validateValues` checks on listeners in its order, then that every
    /// bound host resolves.
    fn validate(&self, props: &BTreeMap<String, String>) -> Result<(), ConfigError> {
        let all_text = props.get("listeners").cloned().unwrap_or_default();
        let advertised_text = props.get("advertised.listeners").cloned().unwrap_or(all_text.clone());
        // First: a listener Fjord cannot serve is the thing to fix, whatever else is.
        for l in self.broker() {
            if l.security_protocol != SecurityProtocol::Plaintext {
                return Err(invalid(
                    "listeners",
                    &all_text,
                    &format!(
                        "listener {} uses security protocol {}, which Fjord does not serve yet; only PLAINTEXT listeners are served",
                        l.name,
                        l.security_protocol.name()
                    ),
                ));
            }
        }
        if self.broker().next().is_none() || self.advertised.is_empty() {
            return Err(invalid(
                "listeners",
                &all_text,
                "There must be at least one broker advertised listener. Perhaps all listeners appear in controller.listener.names?",
            ));
        }
        if !self
            .advertised
            .iter()
            .any(|l| l.name == self.inter_broker_listener_name)
        {
            let names: Vec<&str> = self.advertised.iter().map(|l| l.name.as_str()).collect();
            return Err(invalid(
                "inter.broker.listener.name",
                &self.inter_broker_listener_name,
                &format!("inter.broker.listener.name must be a listener name defined in advertised.listeners. The valid options based on currently configured listeners are {}", names.join(",")),
            ));
        }
        if let Some(l) = self
            .advertised
            .iter()
            .find(|l| !self.all.iter().any(|b| b.name == l.name))
        {
            let names: Vec<&str> = self.all.iter().map(|l| l.name.as_str()).collect();
            return Err(invalid(
                "advertised.listeners",
                &advertised_text,
                &format!("advertised.listeners listener names must be equal to or a subset of the ones defined in listeners. Found {}. The valid options based on the current configuration are {}", l.name, names.join(",")),
            ));
        }
        if self.advertised.iter().any(|l| l.host == "0.0.0.0") {
            return Err(invalid(
                "advertised.listeners",
                &advertised_text,
                "advertised.listeners cannot use the nonroutable meta-address 0.0.0.0. Use a routable IP address.",
            ));
        }
        for l in self.broker() {
            l.socket_addr()?;
        }
        Ok(())
    }
}

/// `listener.security.protocol.map`, or Kafka's default (each protocol's own name);
/// with the default, controller listeners are PLAINTEXT unless SSL or SASL is in use,
/// as Kafka's `effectiveListenerSecurityProtocolMap` adds them in KRaft mode.
fn security_protocol_map(
    props: &BTreeMap<String, String>,
    controller_names: &[String],
) -> Result<BTreeMap<String, SecurityProtocol>, ConfigError> {
    const KEY: &str = "listener.security.protocol.map";
    if let Some(v) = props.get(KEY) {
        let mut map = BTreeMap::new();
        for item in split_list(v) {
            let (name, protocol) = item.split_once(':').ok_or_else(|| {
                invalid(
                    KEY,
                    v,
                    &format!("Error parsing configuration property '{KEY}': expected NAME:PROTOCOL, got '{item}'"),
                )
            })?;
            let protocol = SecurityProtocol::parse(protocol).ok_or_else(|| {
                invalid(
                    KEY,
                    v,
                    &format!("Invalid security protocol `{}` defined in {KEY}", protocol.trim()),
                )
            })?;
            map.insert(name.trim().to_ascii_uppercase(), protocol);
        }
        return Ok(map);
    }
    let mut map: BTreeMap<String, SecurityProtocol> = SecurityProtocol::ALL
        .into_iter()
        .map(|p| (p.name().to_string(), p))
        .collect();
    let secured = |name: &str| matches!(name, "SSL" | "SASL_SSL" | "SASL_PLAINTEXT");
    let listener_names: Vec<String> = props
        .get("listeners")
        .map(|v| {
            split_list(v)
                .iter()
                .filter_map(|l| l.split_once("://").map(|(n, _)| n.to_ascii_uppercase()))
                .collect()
        })
        .unwrap_or_default();
    if !controller_names.iter().chain(&listener_names).any(|n| secured(n)) {
        for name in controller_names {
            map.entry(name.clone()).or_insert(SecurityProtocol::Plaintext);
        }
    }
    Ok(map)
}

/// `NAME://HOST:PORT,...` as Kafka's `listenerListToEndPoints` reads it (an IPv6 host
/// in brackets), then its checks: names distinct, and, for `listeners`, ports distinct
/// (port 0 aside) unless two listeners share one as an IPv4 and an IPv6 address.
fn parse_listeners(
    key: &str,
    value: &str,
    protocols: &BTreeMap<String, SecurityProtocol>,
    require_distinct_ports: bool,
) -> Result<Vec<Listener>, ConfigError> {
    let mut out: Vec<Listener> = Vec::new();
    for item in split_list(value) {
        let parse_error = || invalid(key, value, &format!("Unable to parse {item} to a broker endpoint"));
        let (name, rest) = item.split_once("://").ok_or_else(parse_error)?;
        let (host, port) = rest.rsplit_once(':').ok_or_else(parse_error)?;
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let host_ok = host.chars().all(|c| c.is_ascii_alphanumeric() || "-%._:".contains(c));
        if name.is_empty() || !host_ok {
            return Err(parse_error());
        }
        let port: u16 = parse_num(key, port, 0, u16::MAX as i64).map_err(|_| parse_error())?;
        let name = name.to_ascii_uppercase();
        let security_protocol = *protocols
            .get(&name)
            .ok_or_else(|| invalid(key, value, &format!("No security protocol defined for listener {name}")))?;
        if out.iter().any(|l| l.name == name) {
            return Err(invalid(
                key,
                value,
                &format!("Each listener must have a different name, listeners: {value}"),
            ));
        }
        out.push(Listener {
            name,
            host: host.to_string(),
            port,
            security_protocol,
        });
    }
    if out.is_empty() {
        return Err(invalid(key, value, "at least one listener is required"));
    }
    if require_distinct_ports {
        check_distinct_ports(key, value, &out)?;
    }
    Ok(out)
}

/// Kafka's `CoreUtils.listenerListToEndPoints` checks, with its messages: listeners
/// sharing a non-zero port must be exactly two, one IPv4 and one IPv6 address.
fn check_distinct_ports(key: &str, value: &str, listeners: &[Listener]) -> Result<(), ConfigError> {
    let ip = |h: &str| h.parse::<std::net::IpAddr>().ok();
    let mut ports: Vec<u16> = listeners.iter().map(|l| l.port).filter(|p| *p != 0).collect();
    ports.sort_unstable();
    ports.dedup();
    for port in ports {
        let sharing: Vec<&Listener> = listeners.iter().filter(|l| l.port == port).collect();
        if sharing.len() < 2 {
            continue;
        }
        let (with_ip, without_ip): (Vec<&Listener>, Vec<&Listener>) =
            sharing.iter().partition(|l| ip(&l.host).is_some());
        if without_ip.len() > 1 {
            return Err(invalid(
                key,
                value,
                &format!("Each listener must have a different port, listeners: {value}"),
            ));
        }
        match with_ip.as_slice() {
            [] | [_] => {}
            [a, b] => {
                let one_of_each = matches!((ip(&a.host), ip(&b.host)), (Some(x), Some(y)) if x.is_ipv4() != y.is_ipv4());
                if !one_of_each || !without_ip.is_empty() {
                    return Err(invalid(
                        key,
                        value,
                        &format!("If you have two listeners on the same port then one needs to be IPv4 and the other IPv6, listeners: {value}, port: {port}"),
                    ));
                }
            }
            _ => {
                return Err(invalid(
                    key,
                    value,
                    &format!("Each listener must have a different port unless exactly one listener has an IPv4 address and the other IPv6 address, listeners: {value}, port: {port}"),
                ))
            }
        }
    }
    Ok(())
}

/// The tutorial's `port` and `host.name`: one PLAINTEXT listener, on 127.0.0.1 unless
/// `host.name` says otherwise (Fjord's zero config listens on loopback only).
fn tutorial_listener(props: &BTreeMap<String, String>) -> Result<Listener, ConfigError> {
    let port: u16 = match props.get("port") {
        Some(p) => parse_num("port", p.trim(), 0, u16::MAX as i64)?,
        None => 9092,
    };
    let host = props
        .get("host.name")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|| "127.0.0.1".into());
    Ok(Listener {
        name: SecurityProtocol::Plaintext.name().into(),
        host,
        port,
        security_protocol: SecurityProtocol::Plaintext,
    })
}

/// `advertised.listeners` (ports may repeat: several names may sit behind one proxy),
/// else the broker listeners with the tutorial's `advertised.host.name` and
/// `advertised.port` applied. An empty host is advertised as 127.0.0.1 where Kafka
/// advertises the machine's canonical host name: Fjord's zero config is loopback only.
fn advertised(
    props: &BTreeMap<String, String>,
    all: &[Listener],
    protocols: &BTreeMap<String, SecurityProtocol>,
    controller_names: &[String],
) -> Result<Vec<Listener>, ConfigError> {
    let mut out = match props.get("advertised.listeners") {
        Some(v) => parse_listeners("advertised.listeners", v, protocols, false)?,
        None => {
            let mut out = all.to_vec();
            for l in &mut out {
                if let Some(h) = props.get("advertised.host.name") {
                    l.host = h.trim().to_string();
                }
                if let Some(p) = props.get("advertised.port") {
                    l.port = parse_num("advertised.port", p.trim(), 1, u16::MAX as i64)?;
                }
            }
            out
        }
    };
    out.retain(|l| !controller_names.contains(&l.name));
    for l in &mut out {
        if l.host.is_empty() {
            l.host = "127.0.0.1".into();
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn error(pairs: &[(&str, &str)]) -> String {
        Listeners::from_properties(&props(pairs)).unwrap_err().to_string()
    }

    /// Kafka's own shipped server.properties (KRaft, combined roles) starts as is: the
    /// CONTROLLER listener is parsed but not served, and `localhost` resolves.
    #[test]
    fn kafkas_shipped_listeners_are_accepted() {
        let l = Listeners::from_properties(&props(&[
            ("listeners", "PLAINTEXT://:9092,CONTROLLER://:9093"),
            (
                "advertised.listeners",
                "PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093",
            ),
            ("controller.listener.names", "CONTROLLER"),
            ("inter.broker.listener.name", "PLAINTEXT"),
            (
                "listener.security.protocol.map",
                "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
            ),
        ]))
        .unwrap();
        let broker: Vec<&str> = l.broker().map(|l| l.name.as_str()).collect();
        assert_eq!(broker, ["PLAINTEXT"]);
        assert_eq!(l.advertised.len(), 1);
        assert_eq!(l.advertised_for("PLAINTEXT").unwrap().host, "localhost");
        assert!(l.advertised_for("CONTROLLER").is_none());
        // Without the map, the controller listener is PLAINTEXT by Kafka's KRaft rule.
        Listeners::from_properties(&props(&[
            ("listeners", "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"),
            ("controller.listener.names", "CONTROLLER"),
        ]))
        .unwrap();
    }

    #[test]
    fn host_names_resolve_ipv4_first_and_names_are_normalised() {
        let l = Listeners::from_properties(&props(&[
            ("listeners", "plaintext://localhost:9092,INTERNAL://127.0.0.2:9093"),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,internal:plaintext",
            ),
        ]))
        .unwrap();
        assert_eq!(l.all[0].name, "PLAINTEXT");
        assert_eq!(l.all[0].socket_addr().unwrap(), "127.0.0.1:9092".parse().unwrap());
        assert_eq!(l.all[1].socket_addr().unwrap(), "127.0.0.2:9093".parse().unwrap());
        assert_eq!(l.advertised_for("INTERNAL").unwrap().port, 9093);
        let v6 = Listeners::from_properties(&props(&[("listeners", "PLAINTEXT://[::1]:9092")])).unwrap();
        assert_eq!(v6.all[0].host, "::1");
        assert_eq!(v6.all[0].to_string(), "PLAINTEXT://[::1]:9092");
    }

    /// Kafka's checks, with Kafka's messages.
    #[test]
    fn bad_listeners_are_refused_as_kafka_refuses_them() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("listeners", "PLAINTEXT://127.0.0.1:9092,PLAINTEXT://127.0.0.1:9093")],
                "Each listener must have a different name",
            ),
            (
                &[("listeners", "PLAINTEXT://127.0.0.1:9092,SSL://127.0.0.2:9092")],
                "If you have two listeners on the same port then one needs to be IPv4 and the other IPv6",
            ),
            (
                &[("listeners", "PLAINTEXT://localhost:9092,SSL://localhost:9092")],
                "Each listener must have a different port, listeners",
            ),
            (
                &[("listeners", "FOO://127.0.0.1:9092")],
                "No security protocol defined for listener FOO",
            ),
            (
                &[("listeners", "PLAINTEXT://127.0.0.1")],
                "Unable to parse PLAINTEXT://127.0.0.1 to a broker endpoint",
            ),
            (&[("listeners", "PLAINTEXT://127.0.0.1:99999")], "to a broker endpoint"),
            (&[("listeners", "PLAINTEXT://a b:9092")], "to a broker endpoint"),
            (
                &[("listeners", "PLAINTEXT://0.0.0.0:9092")],
                "nonroutable meta-address 0.0.0.0",
            ),
            (
                &[
                    ("listeners", "PLAINTEXT://127.0.0.1:9092"),
                    ("advertised.listeners", "PLAINTEXT://0.0.0.0:9092"),
                ],
                "nonroutable meta-address 0.0.0.0",
            ),
            (
                &[
                    ("listeners", "PLAINTEXT://127.0.0.1:9092"),
                    (
                        "advertised.listeners",
                        "PLAINTEXT://127.0.0.1:9092,SSL://127.0.0.1:9093",
                    ),
                ],
                "must be equal to or a subset of the ones defined in listeners",
            ),
            (
                &[
                    ("listeners", "INTERNAL://127.0.0.1:9092"),
                    ("listener.security.protocol.map", "INTERNAL:PLAINTEXT"),
                ],
                "inter.broker.listener.name must be a listener name defined in advertised.listeners",
            ),
            (
                &[
                    ("listeners", "CONTROLLER://127.0.0.1:9093"),
                    ("controller.listener.names", "CONTROLLER"),
                ],
                "at least one broker advertised listener",
            ),
            (
                &[("listener.security.protocol.map", "PLAINTEXT:TLS")],
                "Invalid security protocol `TLS`",
            ),
            (
                &[("listener.security.protocol.map", "PLAINTEXT")],
                "expected NAME:PROTOCOL",
            ),
            (
                &[("listeners", "PLAINTEXT://127.0.0.1:9092,SSL://127.0.0.1:9093")],
                "listener SSL uses security protocol SSL, which Fjord does not serve yet",
            ),
        ];
        for (pairs, expected) in cases {
            let e = error(pairs);
            assert!(e.contains(expected), "{pairs:?}: {e}");
        }
        // One IPv4 and one IPv6 address may share a port; port 0 may repeat.
        Listeners::from_properties(&props(&[
            ("listeners", "PLAINTEXT://127.0.0.1:9092,INTERNAL://[::1]:9092"),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT",
            ),
        ]))
        .unwrap();
        Listeners::from_properties(&props(&[
            ("listeners", "PLAINTEXT://127.0.0.1:0,INTERNAL://127.0.0.1:0"),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT",
            ),
        ]))
        .unwrap();
    }
}
