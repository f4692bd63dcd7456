//! What every tool shares: the bootstrap flags (and the tutorial's old ones, refused
//! or translated with a clear message), `--property` parsing, librdkafka configs.

use anyhow::{bail, Result};
use rdkafka::config::ClientConfig;
use std::collections::BTreeMap;

/// Connection flags of Kafka's tools.
#[derive(clap::Args, Debug, Clone)]
pub struct Connect {
    /// HOST:PORT of one or more brokers.
    #[arg(long = "bootstrap-server", visible_alias = "broker-list", value_name = "HOST:PORT")]
    pub bootstrap_server: Option<String>,
    /// The tutorial's ZooKeeper flag; Fjord has no ZooKeeper and says so.
    #[arg(long, hide = true)]
    pub zookeeper: Option<String>,
    /// Extra librdkafka client properties, KEY=VALUE.
    #[arg(long = "command-property", value_name = "KEY=VALUE")]
    pub command_properties: Vec<String>,
}

impl Connect {
    pub fn bootstrap(&self) -> Result<String> {
        if self.zookeeper.is_some() {
            bail!("Fjord has no ZooKeeper: the brokers keep cluster metadata themselves. Use --bootstrap-server HOST:PORT instead of --zookeeper");
        }
        match &self.bootstrap_server {
            Some(b) if !b.trim().is_empty() => Ok(b.trim().to_string()),
            _ => bail!("missing required option --bootstrap-server HOST:PORT"),
        }
    }

    /// A librdkafka config with the bootstrap servers and any extra properties.
    pub fn client_config(&self) -> Result<ClientConfig> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.bootstrap()?);
        c.set("log_level", "3");
        for (k, v) in parse_pairs(&self.command_properties, "--command-property")? {
            c.set(k, v);
        }
        Ok(c)
    }
}

/// Parses `KEY=VALUE` items; the error names the flag and the item.
pub fn parse_pairs(items: &[String], flag: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for item in items {
        let Some((k, v)) = item.split_once('=') else {
            bail!("{flag} expects KEY=VALUE, got '{item}'");
        };
        if k.trim().is_empty() {
            bail!("{flag} has an empty key in '{item}'");
        }
        out.insert(k.trim().to_string(), v.to_string());
    }
    Ok(out)
}

/// Parses a boolean property value as Kafka's tools do.
pub fn parse_bool(key: &str, v: &str) -> Result<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => bail!("property {key} expects true or false, got '{v}'"),
    }
}

/// Unescapes `\t`, `\n` in separators given on the command line.
pub fn unescape(v: &str) -> String {
    v.replace("\\t", "\t").replace("\\n", "\n")
}
